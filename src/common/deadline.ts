import { AsyncLocalStorage } from "node:async_hooks";

/**
 * The deadline of the call being served, carried through async work so that a server calling
 * onward sends on what is left of its own deadline (the server host's deadline interceptor sets
 * it; the mesh client reads it). Absolute, in `performance.now()` milliseconds.
 */
const inherited = new AsyncLocalStorage<number>();

export function runWithDeadline<T>(deadline: number, work: () => T): T {
  return inherited.run(deadline, work);
}

/** The deadline inherited from the call being served, if any. */
export function inheritedDeadline(): number | undefined {
  return inherited.getStore();
}
