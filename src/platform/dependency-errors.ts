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
