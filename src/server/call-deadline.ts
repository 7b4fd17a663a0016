import { createContextKey, type ContextValues } from "@connectrpc/connect";

/**
 * The caller's deadline as the host's lean gRPC path read it off the request (absolute, in
 * `performance.now()` milliseconds; null when the call has none), so that the deadline
 * interceptor does not parse `grpc-timeout` a second time on every call. Calls that connect-node
 * serves carry nothing here, and the interceptor reads their headers itself.
 */
const callDeadlineKey = createContextKey<number | null | undefined>(undefined, { description: "meshkit call deadline" });

export function recordCallDeadline(values: ContextValues, deadline: number | undefined): void {
  values.set(callDeadlineKey, deadline ?? null);
}

/** The deadline the host recorded: a number, null for none, or undefined when it recorded nothing. */
export function recordedCallDeadline(values: ContextValues): number | null | undefined {
  return values.get(callDeadlineKey);
}
