import type http2 from "node:http2";
import { Metadata } from "@grpc/grpc-js";
import { protocolHeaders } from "./metadata.js";

// The HTTP/2 headers of the mesh client's unary calls (http2-unary.ts), both ways.

/** The request's HTTP/2 headers: gRPC's own, then the caller's metadata (what gRPC owns is not taken from the caller). */
export function requestHeaders(path: string, timeoutMs: number | undefined, callerHeaders: Headers | undefined): http2.OutgoingHttpHeaders {
  const headers: http2.OutgoingHttpHeaders = {
    ":method": "POST",
    ":path": path,
    "content-type": "application/grpc",
    te: "trailers",
    "grpc-accept-encoding": "identity,deflate,gzip",
    "user-agent": userAgent,
  };
  if (timeoutMs !== undefined) headers["grpc-timeout"] = grpcTimeout(timeoutMs);
  // Headers joins repeated values with ", ": a `-bin` key's (base64, the wire's own encoding)
  // are sent as separate fields again, as grpc-js sends them.
  callerHeaders?.forEach((value, key) => {
    if (protocolHeaders.has(key) || key.startsWith(":")) return;
    headers[key] = key.endsWith("-bin") ? value.split(",").map((part) => part.trim()) : value;
  });
  return headers;
}

/** Who is calling, as gRPC clients name themselves: the library, then the runtime. */
const userAgent = `meshkit node/${process.versions.node}`;

/** gRPC's grpc-timeout: at most 8 digits and a unit. */
function grpcTimeout(ms: number): string {
  const whole = Math.max(0, Math.ceil(ms));
  return whole < 100_000_000 ? `${whole}m` : `${Math.ceil(whole / 1000)}S`;
}

/** grpc-message, percent-decoded as the gRPC spec encodes it (undecodable text is kept as it came). */
export function decodeGrpcMessage(value: string | string[] | undefined): string {
  const text = Array.isArray(value) ? value.join(",") : (value ?? "");
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/**
 * The status metadata of a response's trailers (or its headers), as grpc-js's subchannel call
 * reads it: its own `Metadata.fromHttp2Headers` (pseudo-headers out, `-bin` values decoded, an
 * entry it cannot add logged and skipped), without grpc-status and grpc-message.
 */
export function statusMetadataOf(headers: http2.IncomingHttpHeaders): Metadata {
  const metadata = Metadata.fromHttp2Headers(headers);
  metadata.remove("grpc-status");
  metadata.remove("grpc-message");
  return metadata;
}

/**
 * Response headers or trailers as Connect's `Headers` (binary values stay base64, as Connect
 * keeps them); trailers without grpc-status and grpc-message, as grpc-js gives them. A value
 * `Headers` refuses (not ISO-8859-1) is left out rather than fail the call.
 */
export function http2HeadersToHeaders(headers: http2.IncomingHttpHeaders, trailers: boolean): Headers {
  const into = new Headers();
  for (const key in headers) {
    if (key.startsWith(":") || (trailers && (key === "grpc-status" || key === "grpc-message"))) continue;
    const value = headers[key]!;
    for (const one of Array.isArray(value) ? value : [value]) {
      try {
        into.append(key, one);
      } catch {
        // Skipped, as grpc-js skips metadata it cannot add.
      }
    }
  }
  return into;
}
