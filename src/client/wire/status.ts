import { Code, ConnectError } from "@connectrpc/connect";
import { findTrailerError } from "@connectrpc/connect/protocol-grpc";
import { status as grpcStatus, type StatusObject } from "@grpc/grpc-js";
import { metadataToHeaders } from "./metadata.js";
import { NeverSentError } from "./never-sent.js";
import { StreamResetError } from "./stream-reset.js";

/** grpc-js's gRPC status codes are Connect's codes (both follow the gRPC spec's numbering). */
function toCode(code: number): Code {
  return code in Code && code !== 0 ? (code as Code) : Code.Unknown;
}

/**
 * What grpc-js 1.14 says when the server reset the stream with RST_STREAM CANCEL and sent no
 * status (subchannel-call.ts): the only CANCELLED it makes up itself with these exact details and
 * no metadata. Its own client-side cancel says "Cancelled on client".
 */
const resetDetails = "Call cancelled";

/** Whether `status` is grpc-js's account of a stream reset, not a status the server sent. */
export function isStreamReset(status: StatusObject): boolean {
  return status.code === grpcStatus.CANCELLED && status.details === resetDetails && Object.keys(status.metadata.getMap()).length === 0;
}

/**
 * The message of a failure grpc-js reports with no status code at all. Its compression filter
 * (the only filter on a grpc-js 1.14 channel) rejects an unsupported `grpc-encoding`, or a
 * message flagged compressed under `identity`, with a plain Error that it passes on as the status:
 * code and details undefined. The Connect and gRPC clients call that INTERNAL.
 */
export const undecodableMessage =
  "could not decompress a response message: compressed with an encoding this client does not support, or flagged compressed without a grpc-encoding";

/**
 * statusToConnectError turns a grpc-js status that is not OK into the ConnectError connect-node's
 * gRPC transport would raise for the same answer: code and message, the response headers and
 * trailers as metadata, and the details of `grpc-status-details-bin` (a google.rpc.Status)
 * decoded by Connect's own `findTrailerError`, which prefers that status to the plain code and
 * message as Connect does. `neverSent` marks a failure the request cannot have left for
 * (see never-sent.ts).
 *
 * A stream reset without a status (RST_STREAM CANCEL) is DEADLINE_EXCEEDED when the call's
 * `deadline` (epoch ms, as `Date.now()`; undefined: none) has passed — the server gave up as the
 * deadline ran out, just before grpc-js's own timer would have said so — and otherwise CANCELED
 * with a `StreamResetError` cause (see stream-reset.ts).
 */
export function statusToConnectError(status: StatusObject, responseHeader: Headers | undefined, neverSent: boolean, deadline?: number): ConnectError {
  const metadata = metadataToHeaders(status.metadata, responseHeader ? new Headers(responseHeader) : new Headers());
  // grpc-js types `details` as a string, but some of its own failure paths (seen with a response
  // that breaks the protocol, in the Connect conformance suite) leave it undefined; ConnectError
  // would throw on that inside grpc-js's callback and crash the process.
  const details = typeof status.details === "string" ? status.details : "";
  const cause = neverSent ? new NeverSentError(`no connection: ${details}`) : undefined;
  if (typeof status.code !== "number") return new ConnectError(undecodableMessage, Code.Internal, metadata, undefined, cause);
  if (isStreamReset(status)) {
    if (deadline !== undefined && Date.now() >= deadline) {
      return new ConnectError("deadline exceeded (the server reset the stream as the deadline passed)", Code.DeadlineExceeded, metadata);
    }
    return new ConnectError(`stream reset by the server: ${details}`, Code.Canceled, metadata, undefined, cause ?? new StreamResetError(details));
  }
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

/**
 * How grpc-js's subchannel call maps an HTTP status that came without a gRPC status (its
 * `mapHttpStatusCode`, not exported), for the mesh client's unary wire (http2-unary.ts).
 */
export function httpStatusToGrpc(httpStatus: number): [grpcStatus, string] {
  const details = `Received HTTP status code ${httpStatus}`;
  switch (httpStatus) {
    case 400:
      return [grpcStatus.INTERNAL, details];
    case 401:
      return [grpcStatus.UNAUTHENTICATED, details];
    case 403:
      return [grpcStatus.PERMISSION_DENIED, details];
    case 404:
      return [grpcStatus.UNIMPLEMENTED, details];
    case 429:
    case 502:
    case 503:
    case 504:
      return [grpcStatus.UNAVAILABLE, details];
    default:
      return [grpcStatus.UNKNOWN, details];
  }
}
