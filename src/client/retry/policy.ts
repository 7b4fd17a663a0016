import { MethodOptions_IdempotencyLevel as Idempotency } from "@bufbuild/protobuf/wkt";
import type { DescMethod } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { neverSentCode } from "../wire/never-sent.js";
import { streamResetCode } from "../wire/stream-reset.js";

/** Node's codes for a connection that was never made: the request cannot have left. */
const notConnectedCauses = new Set(["ECONNREFUSED", "EHOSTUNREACH", "ENETUNREACH", "EADDRNOTAVAIL"]);

/** The transport's own mark of a request that had no connection to go on (never-sent.ts). */
const transportNeverSent = new Set([neverSentCode]);

/**
 * neverSent tells whether an attempt's failure proves the server never saw the request: the
 * breaker refused it, the connection was refused, the transport says it had no connection for
 * it (a `NeverSentError` cause: grpc-js reports a refused connection or failed TLS handshake
 * only as UNAVAILABLE), or the server refused the stream (HTTP/2 REFUSED_STREAM, or a GOAWAY that
 * excluded it). Only these may be retried for a method that is not idempotent.
 */
export function neverSent(error: unknown, breakerRefused: boolean): boolean {
  return (
    breakerRefused ||
    hasCause(error, notConnectedCauses) ||
    hasCause(error, transportNeverSent) ||
    hasCause(error, tlsHandshakeFailure) ||
    hasCause(error, refusedStream, "message")
  );
}

/** connect-node names REFUSED_STREAM; grpc-js (after its own one transparent retry) says "Stream refused by server". */
const refusedStream = (message: string) => message.includes("REFUSED_STREAM") || message.includes("Stream refused by server");

/** Whether the proto marks `method` as safe to repeat (`option idempotency_level`). */
export function isIdempotent(method: DescMethod): boolean {
  return method.idempotency === Idempotency.NO_SIDE_EFFECTS || method.idempotency === Idempotency.IDEMPOTENT;
}

/**
 * Codes worth another attempt on another instance once the request may have been processed:
 * the instance was unreachable, overloaded or too slow. (An answer such as INVALID_ARGUMENT
 * would be the same anywhere.)
 */
const retryableCodes = new Set<Code>([Code.Unavailable, Code.DeadlineExceeded, Code.ResourceExhausted]);

/**
 * isRetryable: whether a failed attempt may be tried again elsewhere, by the request's fate alone
 * (the outcome classifier has already said whether the instance failed): one that never left,
 * always; one that may have been processed, only for an idempotent method and a retryable code
 * (`codes`: by default the three above; a discovery chain's route may name others).
 */
export function isRetryable(error: ConnectError, method: DescMethod, sent: boolean, codes: ReadonlySet<Code> = retryableCodes): boolean {
  if (!sent) return true;
  return isIdempotent(method) && codes.has(error.code);
}

/** Node's codes for a connection that broke: the instance went away, not the request's fault. */
const brokenConnectionCauses = new Set([
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "ERR_HTTP2_SESSION_ERROR",
  "ERR_HTTP2_STREAM_ERROR",
  "ERR_HTTP2_GOAWAY_SESSION",
  "ERR_HTTP2_INVALID_SESSION",
  "ERR_HTTP2_PING_CANCEL",
]);

/** Whether `error` or one of its causes has a `code` (or `message`) that `codes` matches. */
function hasCause(error: unknown, codes: ReadonlySet<string> | ((value: string) => boolean), property: "code" | "message" = "code"): boolean {
  const matches = typeof codes === "function" ? codes : (value: string) => codes.has(value);
  for (let cause: unknown = error, depth = 0; cause && depth < 5; depth++) {
    const value = (cause as Record<string, unknown>)[property];
    if (typeof value === "string" && matches(value)) return true;
    cause = (cause as { cause?: unknown }).cause;
  }
  return false;
}

/** Node's codes for a failed TLS handshake (refused certificate, untrusted or expired one). */
const tlsHandshakeFailure = (code: string) =>
  code.startsWith("ERR_SSL_") || code.startsWith("ERR_TLS_") || /CERT|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)/.test(code);

/** The transport's mark of a stream the server reset without a status (stream-reset.ts). */
const streamReset = new Set([streamResetCode]);

/**
 * attemptError turns any attempt failure into the ConnectError the caller and the breaker see.
 * A breaker refusal becomes UNAVAILABLE; so does a broken connection: a stream reset without a
 * status (an instance killed mid-call resets its streams; the grpc-js transport marks that with a
 * `StreamResetError` cause), or Node's codes for a broken connection: for the caller it is the
 * instance that became unavailable, and gRPC's own clients say UNAVAILABLE for it too. A CANCELED
 * status the server sent stays CANCELED (it is the server's answer), and so does a cancellation
 * the caller asked for.
 */
export function attemptError(error: unknown, instanceId: string, breakerRefused: boolean, callerCanceled = false): ConnectError {
  if (breakerRefused) return new ConnectError(`circuit breaker of instance ${instanceId} is open`, Code.Unavailable);
  const connectError = ConnectError.from(error);
  if (connectError.code === Code.Unavailable) return connectError;
  if (hasCause(error, tlsHandshakeFailure)) {
    return new ConnectError(`TLS handshake with instance ${instanceId} failed: ${connectError.rawMessage}`, Code.Unavailable, undefined, undefined, error);
  }
  const resetUnderUs = connectError.code === Code.Canceled && !callerCanceled && hasCause(error, streamReset);
  if (resetUnderUs || (connectError.code !== Code.Canceled && hasCause(error, brokenConnectionCauses))) {
    return new ConnectError(`connection to instance ${instanceId} broke: ${connectError.rawMessage}`, Code.Unavailable, undefined, undefined, error);
  }
  return connectError;
}
