import type { DescMethod } from "@bufbuild/protobuf";
import type { CallEnvironment } from "../call/call.js";
import type { EndpointPool } from "../endpoints/endpoint-set.js";
import type { MeshEndpoint } from "../endpoints/endpoint.js";
import type { HashPolicySpec } from "./compile.js";
import { hashKeyOf } from "./hash-key.js";
import { readHeader, type HeaderInit } from "./headers.js";
import { matchesHeaders, matchesPath, type RouteMatcher } from "./route-match.js";

/** CallCount is one `meshkit_client_calls_total` series: a plain number a call increments. */
export interface CallCount {
  readonly labels: { service: string; route: string; target: string };
  count: number;
}

/**
 * Destination is where one routing decision sends a call: the pool of its target (and failover
 * targets), the call environment with the route's retry policy, its timeout and hash policies.
 * Built when a chain is applied; a decision returns one of them and allocates nothing.
 */
export class Destination {
  constructor(
    /** The route label (`route[i]`, `default`). */
    readonly route: string,
    readonly env: CallEnvironment,
    /** The route's (else the resolver's) RequestTimeout, in ms; undefined: the transport's. */
    readonly timeoutMs: number | undefined,
    readonly hash: readonly HashPolicySpec[],
    /** The target ids, the resolver's own first, then its failover targets in order. */
    readonly targets: readonly string[],
    /** The index of the set an endpoint belongs to (a failover pool's), for the `target` label. */
    private readonly indexOf: (endpoint: MeshEndpoint) => number,
    /** One series per target, in `targets` order. */
    private readonly counts: readonly CallCount[],
  ) {}

  pick(): Destination {
    return this;
  }

  /** The call's hash key from the request headers the hash policies name; undefined for none. */
  hashKey(header: HeaderInit | undefined): string | undefined {
    return hashKeyOf(this.hash, header, readHeader);
  }

  /** Counts a finished call by the target its last attempt went to (the first target when none did); returns that target. */
  finished(endpoint: MeshEndpoint | undefined): string {
    const index = endpoint === undefined ? 0 : Math.max(0, this.indexOf(endpoint));
    this.counts[index]!.count++;
    return this.targets[index]!;
  }
}

/** Split is a weighted choice between destinations, drawn per call (Consul's service-splitter). */
export class Split {
  readonly #cumulative: Float64Array;
  readonly #total: number;

  constructor(
    readonly destinations: readonly Destination[],
    weights: readonly number[],
    private readonly random: () => number = Math.random,
  ) {
    this.#cumulative = new Float64Array(weights.length);
    let sum = 0;
    weights.forEach((weight, i) => (this.#cumulative[i] = sum += weight));
    this.#total = sum;
  }

  pick(): Destination {
    const draw = this.random() * this.#total;
    const cumulative = this.#cumulative;
    const last = cumulative.length - 1;
    for (let i = 0; i < last; i++) if (draw < cumulative[i]!) return this.destinations[i]!;
    return this.destinations[last]!;
  }
}

/** BoundRoute is a route of the chain's router, bound to its destination (or split). */
export interface BoundRoute {
  readonly label: string;
  readonly matcher: RouteMatcher;
  readonly next: Destination | Split;
}

/** The routes that may match one method: those whose path (and methods) fit, up to the first without header conditions. */
interface MethodRoutes {
  readonly path: string;
  readonly routes: readonly BoundRoute[];
}

/**
 * RoutingTable is a chain bound to endpoint pools: the per-call decision. With a router it tries
 * the routes in order (Consul's order: the first match wins, the catch-all last); the path part
 * of each route is decided once per method and kept, so a call only checks the header
 * conditions of the routes its method can match. A split draws its leg at random per call, in
 * proportion to the weights (as Envoy's weighted clusters do).
 */
export class RoutingTable {
  readonly #byMethod = new Map<DescMethod, MethodRoutes>();

  constructor(
    readonly routes: readonly BoundRoute[] | undefined,
    readonly start: Destination | Split | undefined,
    /** Where a call no route matches goes: a destination that fails it (Consul always appends a catch-all; only a chain whose catch-all could not be used lacks one). */
    readonly unmatched: Destination,
  ) {}

  decide(method: DescMethod, header: HeaderInit | undefined): Destination {
    if (this.routes === undefined) return this.start!.pick();
    const candidates = this.#routesOf(method);
    const routes = candidates.routes;
    for (let i = 0; i < routes.length; i++) {
      const route = routes[i]!;
      if (route.matcher.headers.length === 0 || matchesHeaders(route.matcher, candidates.path, header)) return route.next.pick();
    }
    return this.unmatched;
  }

  #routesOf(method: DescMethod): MethodRoutes {
    let entry = this.#byMethod.get(method);
    if (entry) return entry;
    const path = `/${method.parent.typeName}/${method.name}`;
    const routes: BoundRoute[] = [];
    for (const route of this.routes!) {
      if (!matchesPath(route.matcher, path)) continue;
      routes.push(route);
      if (route.matcher.headers.length === 0) break; // it always matches: nothing after it can
    }
    entry = { path, routes };
    this.#byMethod.set(method, entry);
    return entry;
  }
}

/** A pool with no endpoint at all (a call that no route matches). */
export const emptyPool: EndpointPool = { pick: () => undefined, finished: () => undefined, series: () => undefined };
