import type { Instance } from "../discovery/instance.js";

/**
 * EndpointLoad is what load-aware balancers read about an endpoint. The mesh transport updates
 * it around every attempt; balancers only read it.
 */
export interface EndpointLoad {
  /** Attempts sent to the endpoint and not yet finished. */
  readonly outstanding: number;
  /**
   * Peak-EWMA latency estimate in milliseconds at time `nowMs` (Finagle's PeakEwma: a slow
   * response raises it at once, fast ones lower it gradually, and it decays while idle).
   */
  latencyCost(nowMs: number): number;
}

/** Endpoint is what a balancer chooses between: an instance and its live load. */
export interface Endpoint {
  readonly instance: Instance;
  readonly load: EndpointLoad;
  /**
   * The share of traffic to give it now, when it differs from `instance.weight` (the mesh
   * transport ramps a newly joined instance up during slow start). Read it with `weightOf`.
   */
  readonly weight?: number;
}

/** weightOf is the weight a balancer should use for `endpoint`: its current one, else its instance's. */
export function weightOf(endpoint: Endpoint): number {
  return endpoint.weight ?? endpoint.instance.weight;
}

/**
 * Picker is an immutable snapshot over the endpoints that can take calls now (their breakers
 * are not open). The transport replaces it whenever that set changes, so a pick never locks and,
 * in the common case, never allocates.
 */
export interface Picker {
  /**
   * pick returns an endpoint, or undefined when none is left. Endpoints in `exclude` (those
   * already tried by this call) are passed over while another exists. `key` is the call's hash
   * key, when its route names one (Consul's `HashPolicies`): consistent-hashing balancers
   * (`ring_hash`) send equal keys to one endpoint; the others ignore it.
   */
  pick(exclude?: ReadonlySet<Endpoint>, key?: string): Endpoint | undefined;
}

/**
 * Balancer chooses an endpoint per call. It may keep state across pickers (a round-robin
 * position), which is why the transport makes one per client. Balancers are known by name
 * through the registry (registry.ts), where users register their own.
 */
export interface Balancer {
  readonly name: string;
  picker(endpoints: readonly Endpoint[]): Picker;
}

export type BalancerFactory = () => Balancer;

/**
 * firstNotExcluded is the slow path shared by the built-in pickers: when the chosen endpoint
 * was already tried, walk on from it to the next one that was not.
 */
export function firstNotExcluded(
  endpoints: readonly Endpoint[],
  start: number,
  exclude: ReadonlySet<Endpoint>,
): Endpoint | undefined {
  for (let offset = 0; offset < endpoints.length; offset++) {
    const candidate = endpoints[(start + offset) % endpoints.length]!;
    if (!exclude.has(candidate)) return candidate;
  }
  return undefined;
}

/** The picker of an empty set. */
export const emptyPicker: Picker = { pick: () => undefined };
