import { type Balancer, weightOf } from "./balancer.js";
import { twoChoicesBalancer } from "./two-choices.js";

/**
 * leastOutstandingBalancer ("least_outstanding") picks, of two random endpoints, the one with
 * fewer calls in flight per unit of weight: a slow or stuck instance accumulates outstanding
 * calls and stops being chosen, with no latency bookkeeping at all (Finagle's P2C least-loaded).
 */
export function leastOutstandingBalancer(random?: () => number): Balancer {
  return twoChoicesBalancer(
    "least_outstanding",
    (endpoint) => endpoint.load.outstanding / weightOf(endpoint),
    random,
  );
}

