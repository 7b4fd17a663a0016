import { type Balancer, weightOf } from "./balancer.js";
import { twoChoicesBalancer } from "./two-choices.js";

/**
 * peakEwmaBalancer ("peak_ewma") picks, of two random endpoints, the one with the lower
 * expected wait: peak-EWMA latency times (outstanding + 1), per unit of weight. This is what
 * Finagle, Linkerd and Kratos use: it reacts at once to a slowing instance and prefers the
 * fastest one when all are healthy.
 */
/** Cost of an endpoint with calls in flight but no latency measured yet (Finagle uses 1e307). */
const unknownLatencyPenalty = 1e12;

export function peakEwmaBalancer(random?: () => number): Balancer {
  return twoChoicesBalancer(
    "peak_ewma",
    (endpoint, now) => {
      const latency = endpoint.load.latencyCost(now);
      const outstanding = endpoint.load.outstanding;
      // No latency seen yet: a busy unknown endpoint is a bad bet, an idle one a free probe
      // (Finagle's "penalty" rule).
      const cost = latency === 0 ? (outstanding === 0 ? 0 : unknownLatencyPenalty + outstanding) : latency * (outstanding + 1);
      return cost / weightOf(endpoint);
    },
    random,
  );
}

