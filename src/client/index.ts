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
export { createMeshTransport, type MeshTransport, type MeshTransportOptions, type MeshEvent, type MethodOptions, type RetryOptions, type DiscoveryChainOptions } from "./mesh-transport.js";
export type { ChainEvent, RoutingLog, RoutingView } from "./routing/chain-routing.js";
export type { Problem, ProblemKind } from "./routing/problems.js";
export { defaultClassifier, outcomeClassifierKey, type AttemptResult, type Outcome, type OutcomeClassifier } from "./call/outcome-classifier.js";
export type { HedgingOptions } from "./retry/hedging.js";
export type { SlowStartOptions } from "./endpoints/endpoint-set.js";
export { pushbackHeader, type Pushback } from "./retry/pushback.js";
export { firstNotExcluded, weightOf, type Balancer, type BalancerFactory, type Endpoint, type EndpointLoad, type Picker } from "./balancing/balancer.js";
export { registerBalancer, createBalancer, balancerNames } from "./balancing/registry.js";
export { roundRobinBalancer } from "./balancing/round-robin.js";
export { randomBalancer } from "./balancing/random.js";
export { leastOutstandingBalancer } from "./balancing/least-outstanding.js";
export { peakEwmaBalancer } from "./balancing/peak-ewma.js";
export { ringHashBalancer, type RingHashOptions } from "./balancing/ring-hash.js";
export { consulResolver, type ConsulResolverOptions } from "./discovery/consul.js";
export type { Resolver } from "./discovery/resolver.js";
export { staticResolver } from "./discovery/static.js";
export type { Instance } from "./discovery/instance.js";
export type { BreakerOptions } from "./health/breaker.js";
export { createRetryBudget, type RetryBudget, type RetryBudgetOptions } from "./retry/budget.js";
export { backoffDelay, type BackoffOptions } from "./retry/backoff.js";
