import { MethodOptions_IdempotencyLevel as Idempotency } from "@bufbuild/protobuf/wkt";
import type { DescMethod } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";

/** Node's codes for a connection that was never made: the request cannot have left. */
const notConnectedCauses = new Set(["ECONNREFUSED", "EHOSTUNREACH", "ENETUNREACH", "EADDRNOTAVAIL"]);

/**
 * neverSent tells whether an attempt's failure proves the server never saw the request: the
 * breaker refused it, the connection was refused, or the server refused the stream (HTTP/2
 * REFUSED_STREAM, or a GOAWAY that excluded it). Only these may be retried for a method that
 * is not idempotent.
 */
export function neverSent(error: unknown, breakerRefused: boolean): boolean {
  if (breakerRefused) return true;
  for (let cause: unknown = error, depth = 0; cause && depth < 5; depth++) {
    const { code, message } = cause as { code?: unknown; message?: unknown };
    if (typeof code === "string" && notConnectedCauses.has(code)) return true;
    if (typeof message === "string" && /REFUSED_STREAM|ERR_HTTP2_GOAWAY_SESSION/.test(message)) return true;
    cause = (cause as { cause?: unknown }).cause;
  }
  return false;
}

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

export function isRetryable(error: ConnectError, method: DescMethod, sent: boolean): boolean {
  if (!sent) return true;
  return isIdempotent(method) && retryableCodes.has(error.code);
}

/** The ConnectError for any attempt failure, with a breaker refusal as UNAVAILABLE. */
export function attemptError(error: unknown, instanceId: string, breakerRefused: boolean): ConnectError {
  if (breakerRefused) return new ConnectError(`circuit breaker of instance ${instanceId} is open`, Code.Unavailable);
  return ConnectError.from(error);
}
