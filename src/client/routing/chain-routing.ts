import { setTimeout as sleep } from "node:timers/promises";
import type { DescMethod } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Span } from "@opentelemetry/api";
import type { ConsulClient } from "../../platform/consul.js";
import type { Balancer } from "../balancing/balancer.js";
import { createBalancer } from "../balancing/registry.js";
import { ringHashBalancer } from "../balancing/ring-hash.js";
import type { CallEnvironment } from "../call/call.js";
import { consulResolver, type ConsulResolverOptions } from "../discovery/consul.js";
import type { Instance } from "../discovery/instance.js";
import type { Resolver } from "../discovery/resolver.js";
import type { EndpointSet } from "../endpoints/endpoint-set.js";
import type { MeshEndpoint } from "../endpoints/endpoint.js";
import type { ClientMetrics } from "../telemetry/metrics.js";
import { watchDiscoveryChain, type ChainUpdate, type ChainWatch } from "./chain-watch.js";
import { compileChain, type BalancerSpec, type CompiledChain, type GroupSpec, type HashPolicySpec, type NextSpec, type RouteSpec, type TargetSpec } from "./compile.js";
import { FailoverPool } from "./failover-pool.js";
import type { HeaderInit } from "./headers.js";
import type { Problem } from "./problems.js";
import { Destination, emptyPool, RoutingTable, Split, type BoundRoute, type CallCount } from "./routing-table.js";

/** Where routing reports what it could not apply; pino's Logger fits. */
export interface RoutingLog {
  warn(fields: Record<string, unknown>, message: string): void;
  info(fields: Record<string, unknown>, message: string): void;
}

/** ChainEvent tells the transport's `onEvent` that a chain was applied, and what it holds. */
export interface ChainEvent {
  type: "chain";
  service: string;
  /** True when calls take the transport's own path (no entry applies, or no chain could be read). */
  trivial: boolean;
  /** The target ids in use, primary and failover. */
  targets: string[];
  problems: Problem[];
}

/** What a transport tells its chain routing. */
export interface ChainRoutingOptions {
  consul: ConsulClient;
  service: string;
  /** The transport's own selection (tags, meta, filter, dc, timing, connect). */
  selection: Omit<ConsulResolverOptions, "service">;
  /** The transport's own endpoint set and resolver: a target that is the service itself, as the transport selects it, uses them. */
  own: { set: EndpointSet; resolver: Resolver };
  /** The transport's call environment: a destination's is a copy with its pool, retries and error. */
  env: CallEnvironment;
  /** A new balancer as the transport would make one (its `balancer` option). */
  newBalancer: () => Balancer;
  /** A new endpoint set for `target` with the transport's endpoint options (TLS for the target's service). */
  newSet: (target: TargetSpec, balancer: Balancer) => { set: EndpointSet; close(): void };
  metrics: ClientMetrics | undefined;
  log: RoutingLog;
  onChain: (event: ChainEvent) => void;
  /** How long the first call waits for the chain before calls go to the service itself, in ms. Default 2 000. */
  firstAnswerTimeoutMs?: number;
  /** How long a new chain waits for its new targets' first instances before it applies anyway, in ms. Default 1 000. */
  targetReadyTimeoutMs?: number;
  /** How long a target no chain uses any more is kept for calls in flight (their retries), in ms. Default 30 000. */
  retireAfterMs?: number;
}

/** What a test or an operator can see of the routing in force. */
export interface RoutingView {
  /** The chain's JSON text in force; undefined before one applied (or when none could be read). */
  readonly chain: string | undefined;
  readonly trivial: boolean;
  /** Each target in use and its current endpoints. */
  readonly targets: ReadonlyMap<string, readonly MeshEndpoint[]>;
}

/** One target's endpoint set, shared by every chain version (and route) that names it with the same balancer. */
class TargetSlot {
  users = 0;
  retireTimer: NodeJS.Timeout | undefined;
  #problemReported = false;

  constructor(
    readonly key: string,
    readonly target: TargetSpec,
    readonly set: EndpointSet,
    readonly resolver: Resolver,
    readonly close: () => void,
  ) {}

  /** Its watch has answered, or failed: waiting longer would not help a new chain apply. */
  get settled(): boolean {
    return this.resolver.resolved || this.resolver.lastError !== undefined;
  }

  /** The first time Consul refused its subset's filter, true (then never again). */
  takeFilterProblem(): boolean {
    if (this.#problemReported || !this.target.filter || !isFilterRefusal(this.resolver.lastError)) return false;
    this.#problemReported = true;
    return true;
  }
}

/**
 * ChainRouting is one mesh transport's traffic management from Consul's discovery chain: it
 * watches the chain (shared per Consul client and service, chain-watch.ts), compiles each new one
 * (compile.ts), binds it to one endpoint set per target (each fed by the shared health watch of
 * its selection: the subset's filter passed to Consul, its datacenter, the mesh view when the
 * transport is in the mesh), waits up to `targetReadyTimeoutMs` for new targets' first answers,
 * and then swaps the routing table in one assignment. Calls in flight keep the destination they
 * were routed to; a target no chain uses any more is kept `retireAfterMs` for their retries.
 *
 * The common case costs nothing: a chain that is one resolver on the service itself (no config
 * entries) leaves the table undefined, and `decide` returns undefined after counting the call,
 * so the call takes the transport's own path exactly as without routing.
 */
export class ChainRouting {
  #table: RoutingTable | undefined;
  #applied: { text: string; compiled: CompiledChain; slots: TargetSlot[] } | undefined;
  #ready = false;
  readonly #firstReady = Promise.withResolvers<void>();
  #fast: CallCount;
  readonly #counts = new Map<string, CallCount>();
  readonly #slots = new Map<string, TargetSlot>();
  readonly #logged = new Set<string>();
  readonly #watch: ChainWatch;
  readonly #unsubscribe: () => void;
  readonly #firstTimer: NodeJS.Timeout;
  #seq = 0;
  #closed = false;

  constructor(private readonly options: ChainRoutingOptions) {
    const { service, selection } = options;
    this.#fast = this.#count("default", service);
    this.#watch = watchDiscoveryChain(options.consul, {
      service,
      dc: selection.dc,
      waitSeconds: selection.waitSeconds,
      minQueryIntervalMs: selection.minQueryIntervalMs,
      maxRetryDelayMs: selection.maxRetryDelayMs,
      resetGraceMs: selection.resetGraceMs,
    });
    this.#unsubscribe = this.#watch.subscribe((update) => this.#onUpdate(update));
    const firstAnswerTimeoutMs = options.firstAnswerTimeoutMs ?? 2000;
    this.#firstTimer = setTimeout(() => this.#fallBack(new Error(`no answer within ${firstAnswerTimeoutMs} ms`)), firstAnswerTimeoutMs);
    this.#firstTimer.unref();
    if (this.#watch.current) this.#onUpdate({ kind: "chain", ...this.#watch.current });
    else if (this.#watch.failing) this.#fallBack(this.#watch.failing);
    options.metrics?.callSources.set(this, () => this.#counts.values());
  }

  /**
   * decide routes one call: undefined when the transport's own path applies (the call is counted
   * for its target all the same), else the destination the chain sends it to.
   */
  decide(method: DescMethod, header: HeaderInit | undefined): Destination | undefined {
    const table = this.#table;
    if (table === undefined) {
      this.#fast.count++;
      return undefined;
    }
    return table.decide(method, header);
  }

  /** Names the call's route and (first) target on its span; only for a span that records. */
  annotate(span: Span, destination: Destination | undefined): void {
    span.setAttribute("meshkit.route", destination?.route ?? "default");
    span.setAttribute("meshkit.target", destination?.targets[0] ?? this.#fast.labels.target);
  }

  /** Counts a routed call by the target that served it, and names it on the span. */
  finished(destination: Destination, endpoint: MeshEndpoint | undefined, span: Span): void {
    const target = destination.finished(endpoint);
    if (span.isRecording()) span.setAttribute("meshkit.target", target);
  }

  /** `resolver`, resolved only once the routing is ready too: the first calls wait for the chain (bounded). */
  gate(resolver: Resolver): Resolver {
    const isReady = () => this.#ready;
    const whenReady = (signal: AbortSignal | undefined) => this.#whenReady(signal);
    return {
      get instances() {
        return resolver.instances;
      },
      get resolved() {
        return isReady() && resolver.resolved;
      },
      async whenResolved(signal) {
        await Promise.all([resolver.whenResolved(signal), whenReady(signal)]);
      },
      subscribe: (listener) => resolver.subscribe(listener),
      stalenessMs: () => resolver.stalenessMs(),
      get lastError() {
        return resolver.lastError;
      },
      close: () => resolver.close(),
    };
  }

  get view(): RoutingView {
    const targets = new Map<string, readonly MeshEndpoint[]>();
    for (const slot of this.#applied?.slots ?? []) targets.set(slot.target.id, slot.set.list);
    return { chain: this.#applied?.text, trivial: this.#table === undefined, targets };
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#seq++;
    clearTimeout(this.#firstTimer);
    this.#unsubscribe();
    this.#watch.close();
    for (const slot of this.#slots.values()) {
      clearTimeout(slot.retireTimer);
      slot.close();
    }
    this.#slots.clear();
    this.#table = undefined;
    this.options.metrics?.callSources.delete(this);
    this.#firstReady.resolve();
  }

  #whenReady(signal: AbortSignal | undefined): Promise<void> {
    if (this.#ready) return Promise.resolve();
    if (!signal) return this.#firstReady.promise;
    signal.throwIfAborted();
    return Promise.race([this.#firstReady.promise, new Promise<never>((_, reject) => signal.addEventListener("abort", () => reject(signal.reason), { once: true }))]);
  }

  #markReady(): void {
    if (this.#ready) return;
    this.#ready = true;
    clearTimeout(this.#firstTimer);
    this.#firstReady.resolve();
  }

  /** No chain could be read before the first calls: they go to the service itself (as without a chain) until one is. */
  #fallBack(error: Error): void {
    if (this.#ready || this.#closed) return;
    this.options.log.warn({ service: this.options.service, error: error.message }, "the discovery chain is unavailable: calls go to the service itself until Consul answers");
    this.#markReady();
  }

  #onUpdate(update: ChainUpdate): void {
    if (this.#closed) return;
    if (update.kind === "unavailable") {
      this.#fallBack(update.error);
      return;
    }
    const compiled = compileChain(update.chain, this.options.service);
    if ("error" in compiled) {
      this.#report([...compiled.problems, { kind: "invalid_chain", message: compiled.error }]);
      this.options.log.warn({ service: this.options.service, error: compiled.error }, this.#applied ? "a new discovery chain cannot be applied: the previous one keeps applying" : "the discovery chain cannot be applied: calls go to the service itself");
      this.#markReady();
      return;
    }
    void this.#apply(compiled, update.text);
  }

  async #apply(compiled: CompiledChain, text: string): Promise<void> {
    const seq = ++this.#seq;
    const slots: TargetSlot[] = [];
    const byId = new Map<string, Map<string, TargetSlot>>();
    if (!compiled.trivial) {
      for (const group of compiled.groups.values()) {
        for (const id of [group.primary, ...group.failover]) {
          const balancerKey = group.balancer?.key ?? "";
          let forTarget = byId.get(id);
          if (!forTarget) byId.set(id, (forTarget = new Map()));
          if (forTarget.has(balancerKey)) continue;
          const slot = this.#acquire(compiled.targets.get(id)!, group.balancer);
          forTarget.set(balancerKey, slot);
          slots.push(slot);
        }
      }
      // New targets get their first answer before calls are sent to them: a call routed to a
      // set that has not heard from Consul yet would fail for nothing.
      const deadline = performance.now() + (this.options.targetReadyTimeoutMs ?? 1000);
      while (!slots.every((slot) => slot.settled) && performance.now() < deadline && seq === this.#seq) await sleep(5);
    }
    if (seq !== this.#seq) {
      for (const slot of slots) this.#release(slot);
      return;
    }
    const table = compiled.trivial ? undefined : this.#bind(compiled, byId);
    const previous = this.#applied;
    this.#table = table;
    this.#applied = { text, compiled, slots };
    if (compiled.trivial) this.#retarget(compiled);
    for (const slot of previous?.slots ?? []) this.#release(slot);
    this.#report(compiled.problems);
    for (const slot of slots) if (slot.takeFilterProblem()) this.#report([filterProblem(slot)]);
    this.options.metrics?.chainUpdates.inc({ service: this.options.service });
    this.options.onChain({ type: "chain", service: this.options.service, trivial: compiled.trivial, targets: slots.map((slot) => slot.target.id), problems: [...compiled.problems] });
    this.#markReady();
  }

  /** The fast path's `target` label: the chain's own target id, once a chain says it (before: the service name). */
  #retarget(compiled: CompiledChain): void {
    const start = compiled.start?.kind === "group" ? compiled.groups.get(compiled.start.group) : undefined;
    if (start && this.#fast.labels.target !== start.primary) this.#fast = this.#count("default", start.primary);
  }

  #bind(compiled: CompiledChain, byId: Map<string, Map<string, TargetSlot>>): RoutingTable {
    const service = this.options.service;
    const slotOf = (group: GroupSpec, id: string) => byId.get(id)!.get(group.balancer?.key ?? "")!;
    const pools = new Map<string, { slots: TargetSlot[]; pool: EndpointSet | FailoverPool }>();
    for (const group of compiled.groups.values()) {
      const groupSlots = [group.primary, ...group.failover].map((id) => slotOf(group, id));
      pools.set(group.node, { slots: groupSlots, pool: groupSlots.length === 1 ? groupSlots[0]!.set : new FailoverPool(groupSlots.map((slot) => slot.set)) });
    }
    const destination = (label: string, group: GroupSpec, route: RouteSpec | undefined, hash: readonly HashPolicySpec[]) => {
      const { slots, pool } = pools.get(group.node)!;
      const env: CallEnvironment = {
        ...this.options.env,
        endpoints: pool,
        maxAttempts: route?.retry?.maxAttempts ?? this.options.env.maxAttempts,
        retryCodes: route?.retry?.codes,
        noInstanceError: (tried, last) => this.#noInstance(slots, tried, last),
      };
      const indexOf = pool instanceof FailoverPool ? (endpoint: MeshEndpoint) => pool.indexOf(endpoint) : () => 0;
      return new Destination(
        label,
        env,
        route?.timeoutMs ?? group.requestTimeoutMs,
        hash.length > 0 ? hash : group.hash,
        slots.map((slot) => slot.target.id),
        indexOf,
        slots.map((slot) => this.#count(label, slot.target.id)),
      );
    };
    const nodeOf = (label: string, next: NextSpec, route: RouteSpec | undefined): Destination | Split => {
      if (next.kind === "group") return destination(label, compiled.groups.get(next.group)!, route, []);
      return new Split(
        next.legs.map((leg) => destination(label, compiled.groups.get(leg.group)!, route, next.hash)),
        next.legs.map((leg) => leg.weight),
      );
    };
    const routes: BoundRoute[] | undefined = compiled.routes?.map((route) => ({ label: route.label, matcher: route.matcher, next: nodeOf(route.label, route.next, route) }));
    const start = compiled.start && nodeOf("default", compiled.start, undefined);
    const unmatched = new Destination(
      "unmatched",
      { ...this.options.env, endpoints: emptyPool, noInstanceError: () => new ConnectError(`no route of the discovery chain of "${service}" matches this call`, Code.Unavailable) },
      undefined,
      [],
      ["none"],
      () => 0,
      [this.#count("unmatched", "none")],
    );
    return new RoutingTable(routes, start, unmatched);
  }

  #noInstance(slots: readonly TargetSlot[], tried: ReadonlySet<MeshEndpoint> | undefined, last: ConnectError | undefined): ConnectError {
    if (last) return last;
    const primary = slots[0]!;
    const total = slots.reduce((sum, slot) => sum + slot.set.list.length, 0);
    if (total === 0) {
      for (const slot of slots) if (slot.takeFilterProblem()) this.#report([filterProblem(slot)]);
      const why = primary.resolver.lastError ? ` (${describeError(primary.resolver.lastError)})` : "";
      const others = slots.length > 1 ? `, nor of its failover targets ${slots.slice(1).map((slot) => `"${slot.target.id}"`).join(", ")}` : "";
      return new ConnectError(`no passing instance of target "${primary.target.id}"${why}${others}`, Code.Unavailable);
    }
    if (!tried) return new ConnectError(`all ${total} instances of target "${primary.target.id}"${slots.length > 1 ? " and its failover targets" : ""} have open circuit breakers`, Code.Unavailable);
    return new ConnectError(`every instance of target "${primary.target.id}"${slots.length > 1 ? " and its failover targets" : ""} was tried`, Code.Unavailable);
  }

  #acquire(target: TargetSpec, balancer: BalancerSpec | undefined): TargetSlot {
    const { service, own } = this.options;
    const ownSelection = target.service === service && target.local && target.filter === undefined && target.resolvable;
    const key = `${target.id}|${balancer?.key ?? ""}`;
    let slot = this.#slots.get(key);
    if (!slot) {
      if (ownSelection && !balancer) {
        slot = new TargetSlot(key, target, own.set, own.resolver, () => undefined);
      } else {
        const resolver = ownSelection ? own.resolver : target.resolvable ? consulResolver(this.options.consul, this.#selectionOf(target)) : unresolvable(target);
        const made = this.options.newSet(target, balancer ? balancerOf(balancer) : this.options.newBalancer());
        made.set.apply(resolver.instances);
        const unsubscribe = resolver.subscribe((instances: readonly Instance[]) => made.set.apply(instances));
        slot = new TargetSlot(key, target, made.set, resolver, () => {
          unsubscribe();
          made.close();
          if (!ownSelection) resolver.close();
        });
      }
      this.#slots.set(key, slot);
    }
    slot.users++;
    clearTimeout(slot.retireTimer);
    slot.retireTimer = undefined;
    return slot;
  }

  #release(slot: TargetSlot): void {
    if (--slot.users > 0 || this.#closed) return;
    slot.retireTimer = setTimeout(() => {
      if (slot.users > 0) return;
      this.#slots.delete(slot.key);
      slot.close();
    }, this.options.retireAfterMs ?? 30_000);
    slot.retireTimer.unref();
  }

  /** The health query of a target: its service, its subset's filter (with the transport's own selection when it is the transport's service), its datacenter. */
  #selectionOf(target: TargetSpec): ConsulResolverOptions {
    const { service, selection } = this.options;
    const same = target.service === service;
    const filters = [same ? selection.filter : undefined, target.filter].filter((filter) => filter !== undefined && filter !== "");
    return {
      service: target.service,
      ...(same && selection.tags ? { tags: selection.tags } : {}),
      ...(same && selection.meta ? { meta: selection.meta } : {}),
      ...(filters.length > 0 ? { filter: filters.length === 1 ? filters[0]! : filters.map((filter) => `(${filter})`).join(" and ") } : {}),
      ...(target.local ? (selection.dc ? { dc: selection.dc } : {}) : { dc: target.datacenter }),
      ...(selection.near ? { near: selection.near } : {}),
      ...(selection.waitSeconds !== undefined ? { waitSeconds: selection.waitSeconds } : {}),
      ...(selection.minQueryIntervalMs !== undefined ? { minQueryIntervalMs: selection.minQueryIntervalMs } : {}),
      ...(selection.maxRetryDelayMs !== undefined ? { maxRetryDelayMs: selection.maxRetryDelayMs } : {}),
      ...(selection.resetGraceMs !== undefined ? { resetGraceMs: selection.resetGraceMs } : {}),
      ...(selection.connect ? { connect: true } : {}),
    };
  }

  #count(route: string, target: string): CallCount {
    const key = `${route}\n${target}`;
    let cell = this.#counts.get(key);
    if (!cell) this.#counts.set(key, (cell = { labels: { service: this.options.service, route, target }, count: 0 }));
    return cell;
  }

  /** Counts every problem of a chain applied, and logs each one the first time it is seen. */
  #report(problems: readonly Problem[]): void {
    for (const problem of problems) {
      this.options.metrics?.chainProblems.inc({ service: this.options.service, kind: problem.kind });
      if (this.#logged.has(problem.message)) continue;
      this.#logged.add(problem.message);
      this.options.log.warn({ service: this.options.service, problem: problem.kind }, `discovery chain: ${problem.message}`);
    }
  }
}

function balancerOf(spec: BalancerSpec): Balancer {
  return spec.name === "ring_hash" ? ringHashBalancer(spec.ring) : createBalancer(spec.name);
}

/** A target this client cannot resolve (a cluster peer's): no instances, and why. */
function unresolvable(target: TargetSpec): Resolver {
  const error = new Error(`target "${target.id}" is in a cluster peer, which meshkit does not resolve`);
  return {
    instances: [],
    resolved: true,
    lastError: error,
    whenResolved: () => Promise.resolve(),
    subscribe: () => () => undefined,
    stalenessMs: () => 0,
    close: () => undefined,
  };
}

/**
 * Whether Consul refused a health query's filter: Consul 1.14 checks a subset filter's syntax when
 * the entry is written but its selectors only when the filter is used, and then answers HTTP 500
 * "Failed to create boolean expression evaluator: Selector ... is not valid" (400 for some
 * other filter errors).
 */
function isFilterRefusal(error: Error | undefined): boolean {
  const response = (error as { response?: { statusCode?: number; body?: unknown } } | undefined)?.response;
  if (response?.statusCode !== 400 && response?.statusCode !== 500) return false;
  return typeof response.body === "string" && /boolean expression|selector|filter/i.test(response.body);
}

function filterProblem(slot: TargetSlot): Problem {
  return { kind: "invalid_filter", message: `Consul refused the filter of target "${slot.target.id}" (${JSON.stringify(slot.target.filter)}): ${describeError(slot.resolver.lastError)}; the target has no instances` };
}

/** An error from Consul with the body it answered, when it gave one (a refused filter says why there). */
function describeError(error: Error | undefined): string {
  if (!error) return "";
  const body = (error as { response?: { body?: unknown } }).response?.body;
  return typeof body === "string" && body.trim() ? `${error.message}: ${body.trim()}` : error.message;
}
