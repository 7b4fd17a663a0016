import { Code, ConnectError } from "@connectrpc/connect";
import { findTrailerError } from "@connectrpc/connect/protocol-grpc";
import type { StatusObject } from "@grpc/grpc-js";
import { metadataToHeaders } from "./grpc-js-metadata.js";
import { NeverSentError } from "./never-sent.js";

/** grpc-js's gRPC status codes are Connect's codes (both follow the gRPC spec's numbering). */
function toCode(code: number): Code {
  return code in Code && code !== 0 ? (code as Code) : Code.Unknown;
}

/**
 * statusToConnectError turns a grpc-js status that is not OK into the ConnectError connect-node's
 * gRPC transport would raise for the same answer: code and message, the response headers and
 * trailers as metadata, and the details of `grpc-status-details-bin` (a google.rpc.Status)
 * decoded by Connect's own `findTrailerError`, which prefers that status to the plain code and
 * message as Connect does. `neverSent` marks a failure the request cannot have left for
 * (see never-sent.ts).
 */
export function statusToConnectError(status: StatusObject, responseHeader: Headers | undefined, neverSent: boolean): ConnectError {
  const metadata = metadataToHeaders(status.metadata, responseHeader ? new Headers(responseHeader) : new Headers());
  // grpc-js types `details` as a string, but some of its own failure paths (seen with a response
  // that breaks the protocol, in the Connect conformance suite) leave it undefined; ConnectError
  // would throw on that inside grpc-js's callback and crash the process.
  const details = typeof status.details === "string" ? status.details : "";
  const cause = neverSent ? new NeverSentError(`no connection: ${details}`) : undefined;
  if (metadata.has("grpc-status-details-bin")) {
    try {
      const fromDetails = findTrailerError(metadata);
      if (fromDetails) {
        if (cause) fromDetails.cause = cause;
        return fromDetails;
      }
    } catch {
      // Undecodable details: fall back to the plain status, as grpc-js itself does.
    }
  }
  return new ConnectError(details, toCode(status.code), metadata, undefined, cause);
}
