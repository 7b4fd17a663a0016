import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { observeCalls } from "./observe-calls.js";

/** LoadSheddingOptions bound the calls one instance works on at once. */
export interface LoadSheddingOptions {
  /** Calls in flight (unary calls and open streams) above which new calls are refused. */
  maxInFlight: number;
  /**
   * What the refusal tells clients, by gRFC A6's `grpc-retry-pushback-ms` trailer: retry after
   * this many ms (elsewhere, for the mesh client). Default 0: retry at once on another instance.
   * A negative value tells clients not to retry at all.
   */
  retryAfterMs?: number;
}

/**
 * loadShedding refuses a call with RESOURCE_EXHAUSTED while `maxInFlight` calls are already
 * running, before any work is done, with a `grpc-retry-pushback-ms` trailer. The mesh client
 * reads that trailer as "this instance is overloaded" (an instance failure, not the caller's),
 * and retries as it says; other gRPC clients with retry policies honour it too.
 *
 * ```ts
 * startServerHost({ routes, interceptors: [loadShedding({ maxInFlight: 256, retryAfterMs: 0 })] });
 * ```
 */
export function loadShedding(options: LoadSheddingOptions): Interceptor {
  let inFlight = 0;
  const pushback = String(options.retryAfterMs === undefined ? 0 : Math.trunc(options.retryAfterMs));
  const admitted = observeCalls(() => {
    inFlight++;
    return { end: () => inFlight-- };
  });
  return (next) => {
    const counted = admitted(next);
    return (request) => {
      if (inFlight >= options.maxInFlight) {
        throw new ConnectError(`overloaded: ${inFlight} calls in flight`, Code.ResourceExhausted, { "grpc-retry-pushback-ms": pushback });
      }
      return counted(request);
    };
  };
}
