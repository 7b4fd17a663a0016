/**
 * The mesh client: Consul discovery, pluggable balancers, per-instance circuit breakers with an
 * ejection cap, one outcome classifier, failover, budgeted retries and hedging, server pushback,
 * slow start, tracing and metrics, behind one Connect `Transport`.
 *
 * ```ts
 * import { createClient } from "@connectrpc/connect";
 * import { createMeshTransport } from "meshkit/client";
 * const echo = createClient(EchoService, createMeshTransport({ service: "echo", consul }));
 * ```
 */
export { createMeshTransport, type MeshTransport, type MeshTransportOptions, type MeshEvent, type MethodOptions, type RetryOptions } from "./mesh-transport.js";
export { defaultClassifier, outcomeClassifierKey, type AttemptResult, type Outcome, type OutcomeClassifier } from "./outcome-classifier.js";
export type { HedgingOptions } from "./hedging.js";
export type { SlowStartOptions } from "./endpoint-set.js";
export { pushbackHeader, type Pushback } from "./pushback.js";
export { registerBalancer, createBalancer, balancerNames, firstNotExcluded, weightOf, type Balancer, type BalancerFactory, type Endpoint, type EndpointLoad, type Picker } from "./balancer.js";
export { roundRobinBalancer } from "./balancer-round-robin.js";
export { randomBalancer } from "./balancer-random.js";
export { leastOutstandingBalancer } from "./balancer-least-outstanding.js";
export { peakEwmaBalancer } from "./balancer-peak-ewma.js";
export { consulResolver, type ConsulResolverOptions } from "./resolver-consul.js";
export type { Resolver } from "./resolver.js";
export { staticResolver } from "./resolver-static.js";
export type { Instance } from "./instance.js";
export type { BreakerOptions } from "./breaker.js";
export { createRetryBudget, type RetryBudget, type RetryBudgetOptions } from "./retry-budget.js";
export { backoffDelay, type BackoffOptions } from "./backoff.js";
