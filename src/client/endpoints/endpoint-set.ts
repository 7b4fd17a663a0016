import type { ConnectError } from "@connectrpc/connect";
import { emptyPicker, type Balancer, type Picker } from "../balancing/balancer.js";
import type { ClientMetrics } from "../telemetry/metrics.js";
import { MeshEndpoint, type EndpointOptions } from "./endpoint.js";
import type { Admission, BreakerState } from "../health/endpoint-health.js";
import { EndpointSeries } from "../telemetry/endpoint-metrics.js";
import type { Instance } from "../discovery/instance.js";
import type { Outcome } from "../call/outcome-classifier.js";

/** SlowStartOptions ramp a newly joined instance's share of traffic up (Envoy's slow start). */
export interface SlowStartOptions {
  /** How long the ramp lasts, in ms. */
  windowMs: number;
  /** The share of its weight a new instance starts with, in percent. Default 10. */
  minWeightPercent?: number;
}

export interface EndpointSetOptions {
  service: string;
  balancer: Balancer;
  /** Options of each endpoint, but for `onBreakerState`, which the set handles. */
  endpoint: Omit<EndpointOptions, "onBreakerState">;
  /** The largest share of endpoints, in percent, left out of picks by their breakers at once. */
  maxEjectionPercent: number;
  slowStart: SlowStartOptions | undefined;
  metrics: ClientMetrics | undefined;
  /**
   * Whether this set reports its instance count as `meshkit_resolver_instances{service}`.
   * Default true; false for the extra sets of a discovery chain's targets (routing/), which would
   * overwrite the service's own count.
   */
  reportsInstances?: boolean;
  onInstances: (instances: readonly Instance[]) => void;
  onBreaker: (instance: string, state: BreakerState) => void;
}

/** A pick: the endpoint and how its health let the attempt in. */
export interface Pick {
  endpoint: MeshEndpoint;
  admission: Admission;
}

/**
 * EndpointPool is what a call picks from and reports to: one endpoint set, or several tried in
 * order (a discovery chain's failover, routing/failover-pool.ts).
 */
export interface EndpointPool {
  /** An endpoint for one attempt, passing over `exclude`; `key` is the call's hash key, if any. */
  pick(exclude: ReadonlySet<MeshEndpoint> | undefined, key?: string): Pick | undefined;
  /** Reports an attempt's outcome to the health of the endpoint picked. */
  finished(pick: Pick, outcome: Outcome, error: ConnectError | undefined): void;
  series(endpoint: MeshEndpoint): EndpointSeries | undefined;
}

/**
 * maxEjected is how many of `count` endpoints may be out of picks at once: `percent` of them,
 * at least one (Envoy ejects one whatever the percentage), and never all: one always stays, so
 * a fault shared by every instance (a dependency down) cannot empty the pool, and calls recover
 * the moment the instances do instead of after every breaker's reset timeout.
 */
export function maxEjected(count: number, percent: number): number {
  if (count <= 1) return 0;
  return Math.min(count - 1, Math.max(1, Math.floor((count * percent) / 100)));
}

/**
 * EndpointSet holds the endpoints of one service, made from the resolver's instances, and the
 * picker over those that may take calls: it owns their health. It leaves out endpoints whose
 * breaker is open and half-open ones whose one probe is in flight, the longest-ejected first, up
 * to the ejection cap; it hands a half-open endpoint's probe slot to the first pick of it; and
 * it ramps new endpoints' weights during slow start. The picker is an immutable snapshot,
 * rebuilt on each change.
 */
export class EndpointSet implements EndpointPool {
  #endpoints = new Map<string, MeshEndpoint>();
  /** Each endpoint by the instance object it was last given. */
  #byInstance = new Map<Instance, MeshEndpoint>();
  #series = new WeakMap<MeshEndpoint, EndpointSeries>();
  #list: MeshEndpoint[] = [];
  #picker: Picker = emptyPicker;
  #first = true;
  #rampTimer: NodeJS.Timeout | undefined;
  #ejected: ReadonlySet<MeshEndpoint> = new Set();
  #healthy = 0;
  /** Counts apply() calls: an endpoint's `seenIn` says which one last named it. */
  #generation = 0;

  constructor(private readonly options: EndpointSetOptions) {
    // Each instance's ejection, attempts in flight and latency estimate, read at scrape time.
    options.metrics?.endpointSources.set(this, { service: options.service, endpoints: () => this.#reports() });
  }

  /** Every endpoint, available or not. */
  get list(): readonly MeshEndpoint[] {
    return this.#list;
  }

  /**
   * How many endpoints are healthy: not ejected by their breaker, nor half-open with their probe
   * in flight. The ejection cap may keep unhealthy ones in the picks; a failover reads this to
   * move on while a next target exists (routing/failover-pool.ts).
   */
  get healthy(): number {
    return this.#healthy;
  }

  /** Whether `endpoint` is one of this set's current endpoints. */
  has(endpoint: MeshEndpoint): boolean {
    return this.#endpoints.get(endpointKey(endpoint.instance)) === endpoint;
  }

  apply(instances: readonly Instance[]): void {
    // Endpoints named by this set are marked with its generation, the others leave: no set of
    // thousands is built per change (a change costs in proportion to itself, see below).
    const generation = ++this.#generation;
    for (const instance of instances) {
      // The same instance object as in the last set: nothing of it changed (resolvers hand the
      // same object back for an unchanged instance), so a change costs in proportion to itself.
      let endpoint = this.#byInstance.get(instance);
      if (endpoint === undefined) {
        const key = endpointKey(instance);
        endpoint = this.#endpoints.get(key);
        if (endpoint) {
          this.#byInstance.delete(endpoint.instance);
          endpoint.instance = instance; // weight, tags or meta may have changed
          endpoint.weight = instance.weight;
        } else {
          endpoint = new MeshEndpoint(instance, { ...this.options.endpoint, onBreakerState: (e, state) => this.#onBreaker(e, state) });
          if (this.#first) endpoint.joinedAt = -Infinity; // the first set is not "new": nothing to ramp against
          this.#endpoints.set(key, endpoint);
          if (this.options.metrics) this.#series.set(endpoint, new EndpointSeries(this.options.metrics, this.options.service, instance.id));
        }
        this.#byInstance.set(instance, endpoint);
      }
      endpoint.seenIn = generation;
    }
    // The first set that names instances is the starting pool (a resolver's set before its
    // first answer is empty): only instances joining later are ramped.
    if (instances.length > 0) this.#first = false;
    for (const endpoint of this.#endpoints.values()) {
      if (endpoint.seenIn === generation) continue;
      this.#endpoints.delete(endpointKey(endpoint.instance));
      this.#byInstance.delete(endpoint.instance);
      endpoint.close();
      this.#series.get(endpoint)?.remove();
    }
    this.rebuild();
    if (this.options.reportsInstances !== false) this.options.metrics?.resolverInstances.set({ service: this.options.service }, instances.length);
    this.options.onInstances(instances);
  }

  /**
   * pick chooses an endpoint for one attempt, passing over those in `exclude` (tried by this
   * call already). A half-open endpoint admits this attempt as its probe and leaves the picker.
   */
  pick(exclude: ReadonlySet<MeshEndpoint> | undefined, key?: string): Pick | undefined {
    const endpoint = this.#picker.pick(exclude, key) as MeshEndpoint | undefined;
    if (!endpoint) return undefined;
    const admission = endpoint.health.admit();
    if (admission.probe) this.rebuild();
    return { endpoint, admission };
  }

  /** finished reports an attempt's outcome to its endpoint's health, and its duration to the metrics. */
  finished(pick: Pick, outcome: Outcome, error: ConnectError | undefined): void {
    if (pick.endpoint.health.report(pick.admission, outcome, error) && this.#endpoints.get(endpointKey(pick.endpoint.instance)) === pick.endpoint) {
      this.rebuild();
    }
  }

  series(endpoint: MeshEndpoint): EndpointSeries | undefined {
    return this.#series.get(endpoint);
  }

  /** rebuild makes a new picker over the endpoints that may take calls now. */
  rebuild(): void {
    this.#list = [...this.#endpoints.values()];
    const ramping = this.#applySlowStart();
    const out = this.#list.filter((endpoint) => endpoint.health.unavailable);
    this.#healthy = this.#list.length - out.length;
    let available: MeshEndpoint[] = this.#list;
    this.#ejected = new Set();
    if (out.length > 0) {
      const cap = maxEjected(this.#list.length, this.options.maxEjectionPercent);
      // Over the cap, the endpoints ejected longest ago stay out (their reset timer is nearest);
      // the others keep taking calls until ejections end.
      const ejected = new Set(out.sort((a, b) => a.health.openedAt - b.health.openedAt).slice(0, cap));
      this.#ejected = ejected;
      available = this.#list.filter((endpoint) => !ejected.has(endpoint));
    }
    this.#picker = this.options.balancer.picker(available);
    if (ramping && !this.#rampTimer && this.options.slowStart) {
      // Weights are read when a picker is built: rebuild in ten steps over the window.
      this.#rampTimer = setTimeout(() => {
        this.#rampTimer = undefined;
        this.rebuild();
      }, Math.max(50, this.options.slowStart.windowMs / 10));
      this.#rampTimer.unref();
    }
  }

  close(): void {
    this.options.metrics?.endpointSources.delete(this);
    clearTimeout(this.#rampTimer);
    for (const endpoint of this.#endpoints.values()) {
      endpoint.close();
      this.#series.get(endpoint)?.remove();
    }
    this.#endpoints.clear();
    this.#byInstance.clear();
    this.#list = [];
    this.#healthy = 0;
    this.#picker = emptyPicker;
  }

  *#reports() {
    const now = performance.now();
    for (const endpoint of this.#list) {
      yield { instance: endpoint.instance.id, ejected: this.#ejected.has(endpoint), outstanding: endpoint.load.outstanding, latencyMs: endpoint.load.latencyCost(now) };
    }
  }

  /** Sets each endpoint's weight for now; true while one is still ramping. */
  #applySlowStart(): boolean {
    const slowStart = this.options.slowStart;
    if (!slowStart) return false;
    const now = performance.now();
    const floor = (slowStart.minWeightPercent ?? 10) / 100;
    let ramping = false;
    for (const endpoint of this.#list) {
      const share = Math.min(1, Math.max(floor, (now - endpoint.joinedAt) / slowStart.windowMs));
      if (share < 1) ramping = true;
      endpoint.weight = endpoint.instance.weight * share;
    }
    return ramping;
  }

  #onBreaker(endpoint: MeshEndpoint, state: BreakerState): void {
    this.#series.get(endpoint)?.breaker(state);
    this.options.onBreaker(endpoint.instance.id, state);
    if (this.#endpoints.get(endpointKey(endpoint.instance)) === endpoint) this.rebuild();
  }
}

function endpointKey(instance: Instance): string {
  return `${instance.id}|${instance.address}|${instance.port}`;
}
