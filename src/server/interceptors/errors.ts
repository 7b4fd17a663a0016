import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { Logger } from "pino";

/** Node's codes for a dependency that cannot be reached right now. */
const unreachable = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "EHOSTUNREACH", "ENOTFOUND"]);

/**
 * isDependencyUnavailable: the error says a backing service (PostgreSQL, Redis) is down or
 * restarting, not that the request or the code is wrong. PostgreSQL's SQLSTATE class 08
 * (connection exception) and 57P01-57P03 (shutting down, cannot connect now), pg's own
 * connection messages, and ioredis refusing a command while disconnected.
 */
export function isDependencyUnavailable(error: unknown): boolean {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  if (typeof code === "string" && (unreachable.has(code) || code.startsWith("08") || /^57P0[123]$/.test(code))) return true;
  return typeof message === "string" && /Connection terminated|timeout exceeded when trying to connect|Stream isn't writeable|Connection is closed|the database system is (starting up|shutting down)/.test(message);
}

/**
 * errorMapping gives every failure a proper gRPC code: ConnectErrors pass as they are; a backing
 * service that is down becomes UNAVAILABLE (clients may retry elsewhere or later); anything else
 * is INTERNAL with a generic message, the details going to the log (with the trace id), never to
 * the caller.
 */
export function errorMapping(log: Logger): Interceptor {
  const map = (error: unknown, procedure: string): ConnectError => {
    if (error instanceof ConnectError) return error;
    if (isDependencyUnavailable(error)) {
      log.warn({ err: error, procedure }, "a backing service is unavailable");
      return new ConnectError("a backing service is unavailable; retry later", Code.Unavailable);
    }
    log.error({ err: error, procedure }, "unexpected error");
    return new ConnectError("internal error", Code.Internal);
  };
  return (next) => async (request) => {
    const procedure = `${request.service.typeName}/${request.method.name}`;
    try {
      const response = await next(request);
      if (!response.stream) return response;
      return {
        ...response,
        message: (async function* () {
          try {
            yield* response.message;
          } catch (error) {
            throw map(error, procedure);
          }
        })(),
      };
    } catch (error) {
      throw map(error, procedure);
    }
  };
}
