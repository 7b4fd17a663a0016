import type { Instance } from "./instance.js";

/**
 * Resolver keeps the current instance set of one service and tells subscribers when it changes.
 * The mesh transport reads it on every call, so `instances` must be a cached value, never a
 * registry round-trip.
 */
export interface Resolver {
  /** The last known set; empty before the first answer or when the registry says none pass. */
  readonly instances: readonly Instance[];
  /** True once the registry has answered at least once. */
  readonly resolved: boolean;
  /** Resolves at the first answer; rejects when `signal` aborts first. */
  whenResolved(signal?: AbortSignal): Promise<void>;
  /** Calls `listener` with each changed set until the returned function is called. */
  subscribe(listener: (instances: readonly Instance[]) => void): () => void;
  /** Milliseconds since the registry last answered (Infinity before the first answer). */
  stalenessMs(): number;
  /** The last error talking to the registry, cleared by the next answer. */
  readonly lastError: Error | undefined;
  /** Releases this handle; the shared watch stops when its last handle closes. */
  close(): void;
}
