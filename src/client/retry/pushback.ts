import type { ConnectError } from "@connectrpc/connect";

/** The trailer of gRFC A6 by which a server tells its clients when (or whether) to retry. */
export const pushbackHeader = "grpc-retry-pushback-ms";

/**
 * Pushback is what a server said about retrying, by gRFC A6: `{ retryAfterMs }` to wait that
 * long before the next attempt, or `"never"` (a negative or malformed value) to not retry.
 */
export type Pushback = { retryAfterMs: number } | "never";

/** pushbackOf reads `grpc-retry-pushback-ms` from an error's headers or trailers; undefined when absent. */
export function pushbackOf(error: ConnectError): Pushback | undefined {
  const value = error.metadata.get(pushbackHeader);
  if (value === null) return undefined;
  // gRFC A6: "If the value is not a non-negative integer, the client does not retry."
  return /^\d+$/.test(value.trim()) ? { retryAfterMs: Number(value.trim()) } : "never";
}
