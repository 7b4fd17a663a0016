import { Code, ConnectError, type Interceptor, type StreamRequest, type UnaryRequest } from "@connectrpc/connect";
import type { Logger } from "pino";
import { isDependencyUnavailable } from "../../platform/dependency-errors.js";
import { observeCalls, type CallObserver } from "./observe-calls.js";

/**
 * errorMapping gives every failure a proper gRPC code: ConnectErrors pass as they are; a backing
 * service that is down becomes UNAVAILABLE (clients may retry elsewhere or later); a failure
 * after the call ended (cancelled, or past its deadline) is that ending; anything else is
 * INTERNAL with a generic message, the details going to the log (with the trace id), never to
 * the caller.
 */
export function errorMapping(log: Logger): Interceptor {
  const map = (error: unknown, procedure: string, signal: AbortSignal): ConnectError => {
    if (error instanceof ConnectError) return error;
    // The call was over before the handler failed (the caller went away, or its deadline
    // passed): the failure (a destroyed stream, a "Premature close", an aborted query) is that
    // ending's echo, not a fault. Answer with the ending itself; no error-level log line per
    // hang-up.
    if (signal.aborted) {
      log.debug({ err: error, procedure }, "failed after the call had ended");
      return ConnectError.from(signal.reason, Code.Canceled);
    }
    if (isDependencyUnavailable(error)) {
      log.warn({ err: error, procedure }, "a backing service is unavailable");
      return new ConnectError("a backing service is unavailable; retry later", Code.Unavailable);
    }
    log.error({ err: error, procedure }, "unexpected error");
    return new ConnectError("internal error", Code.Internal);
  };
  return observeCalls((request) => new MappedCall(map, request));
}

type MapError = (error: unknown, procedure: string, signal: AbortSignal) => ConnectError;

/** One call whose failure, if any, is mapped: the procedure's name is only built for a failure. */
class MappedCall implements CallObserver {
  constructor(
    private readonly map: MapError,
    private readonly request: UnaryRequest | StreamRequest,
  ) {}

  mapError(error: unknown): ConnectError {
    return this.map(error, `${this.request.service.typeName}/${this.request.method.name}`, this.request.signal);
  }
}
