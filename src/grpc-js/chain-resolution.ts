import { consulResolver, type ConsulResolverOptions } from "../client/discovery/consul.js";
import type { Instance } from "../client/discovery/instance.js";
import type { Resolver as InstanceResolver } from "../client/discovery/resolver.js";
import { watchDiscoveryChain, type ChainWatch } from "../client/routing/chain-watch.js";
import { compileChain, type BalancerSpec, type CompiledChain, type HashPolicySpec, type NextSpec, type TargetSpec } from "../client/routing/compile.js";
import type { ConsulClient } from "../platform/consul.js";

/**
 * ChainLeg is where a share of the calls goes: the one resolver of a chain without splitter
 * (weight 100), or one leg of a splitter. Its instances are those of its target, or of the first
 * failover target with passing instances when its own has none.
 */
export interface ChainLeg {
  /** The leg's own target id (`[subset.]service.namespace.partition.datacenter`), even when it failed over. */
  readonly name: string;
  /** Its share of the calls, in percent (Consul's `Splits[].Weight`). */
  readonly weight: number;
  readonly instances: readonly Instance[];
  /** The service `instances` are of: the leg's target's, or its failover target's; undefined with none. */
  readonly service: string | undefined;
  /** The resolver's `LoadBalancer.Policy`; undefined: the channel's own balancer. */
  readonly balancer: BalancerSpec | undefined;
  /** The hash policies a `ring_hash` balancer keys calls by (the splitter's, else the resolver's). */
  readonly hash: readonly HashPolicySpec[];
}

/** What a chain resolution tells its channel: where calls go now, and why. */
export interface ChainResolutionUpdate {
  /** One leg, or one per leg of a split. */
  legs: readonly ChainLeg[];
  /** The resolution note (grpc-js shows it in errors when no instance is left). */
  note: string;
}

/** One target of a leg, watched. */
interface WatchedTarget {
  readonly target: TargetSpec;
  readonly resolver: InstanceResolver;
  readonly unsubscribe: () => void;
}

/** One leg: its target and failover targets in order, watched. */
interface WatchedLeg extends Omit<ChainLeg, "instances" | "service"> {
  readonly targets: readonly WatchedTarget[];
}

/**
 * ChainResolution is what a grpc-js channel on `consul:` can carry of a service's discovery chain:
 * what one resolution (an address list and a service config) can say, not per-call routing. It
 * watches the chain (the mesh client's shared watch) and, when every call takes the same path
 * (the chain starts at a resolver or a splitter, or at a router whose every route leads to the
 * same one), resolves each leg of that path: a resolver's target (its subset's filter passed to
 * Consul, its datacenter, the mesh view when asked) and its failover targets, each through the
 * shared health watch of its selection. A leg gets the first target, in order, with a passing
 * instance: a list-level failover (a resolver sees Consul's health, not the channel's connection
 * failures). Each leg carries its resolver's load-balancer policy, and a split its weights: the
 * resolver turns them into a service config (chain-service-config.ts). A router whose routes
 * lead to different places decides per call, which only the mesh client does: the channel then
 * resolves the service itself, as without a chain, and its resolution note says so.
 * Before the first chain answer (up to `firstAnswerTimeoutMs`) nothing is reported, so calls
 * wait; a chain that cannot be read leaves the service itself.
 */
export class ChainResolution {
  #watch: ChainWatch;
  #unsubscribeChain: () => void;
  #legs: WatchedLeg[] = [];
  #why = "";
  #chainKnown = false;
  /** The chain last applied (the shared watch hands the same object to every channel). */
  #applied: Parameters<typeof compileChain>[0] | undefined;
  #closed = false;
  readonly #firstTimer: NodeJS.Timeout;

  constructor(
    private readonly consul: ConsulClient,
    /** The channel's own selection (service, tags, dc, near, connect, watch timing). */
    private readonly selection: ConsulResolverOptions,
    private readonly onUpdate: (update: ChainResolutionUpdate) => void,
    firstAnswerTimeoutMs = 2000,
  ) {
    this.#watch = watchDiscoveryChain(consul, {
      service: selection.service,
      dc: selection.dc,
      waitSeconds: selection.waitSeconds,
      minQueryIntervalMs: selection.minQueryIntervalMs,
      maxRetryDelayMs: selection.maxRetryDelayMs,
      resetGraceMs: selection.resetGraceMs,
    });
    this.#unsubscribeChain = this.#watch.subscribe((update) => {
      if (update.kind === "chain") this.#apply(update.chain);
      else if (!this.#chainKnown) this.#fallBack(`the discovery chain is unavailable (${update.error.message})`);
    });
    this.#firstTimer = setTimeout(() => {
      if (!this.#chainKnown) this.#fallBack(`no discovery chain within ${firstAnswerTimeoutMs} ms`);
    }, firstAnswerTimeoutMs);
    this.#firstTimer.unref();
    // A watch shared with another channel may know the chain already; never report synchronously.
    // What it knows is read when the report is made, not now: a newer chain may arrive (and be
    // applied by the subscription) in between, and must not be overwritten by this older one.
    setImmediate(() => {
      const latest = this.#watch.current;
      if (latest) {
        if (latest.chain !== this.#applied) this.#apply(latest.chain);
      } else if (this.#watch.failing && !this.#chainKnown) this.#fallBack(`the discovery chain is unavailable (${this.#watch.failing.message})`);
    });
  }

  /** Reports again what applies now (grpc-js asks after its balancer went idle with calls waiting). */
  report(): void {
    if (this.#chainKnown && settled(this.#legs)) this.#report();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#firstTimer);
    this.#unsubscribeChain();
    this.#watch.close();
    this.#release(this.#legs);
    this.#legs = [];
  }

  #fallBack(why: string): void {
    if (this.#closed) return;
    this.#chainKnown = true;
    clearTimeout(this.#firstTimer);
    this.#use([this.#own()], `${why}: resolving "${this.selection.service}" itself`);
  }

  #apply(chain: Parameters<typeof compileChain>[0]): void {
    if (this.#closed) return;
    this.#chainKnown = true;
    this.#applied = chain;
    clearTimeout(this.#firstTimer);
    const compiled = compileChain(chain, this.selection.service);
    if ("error" in compiled) {
      this.#use([this.#own()], `the discovery chain cannot be used (${compiled.error}): resolving "${this.selection.service}" itself`);
      return;
    }
    const path = carriedPath(compiled);
    if (!path) {
      this.#use([this.#own()], `the discovery chain of "${this.selection.service}" routes calls per request to different targets, which only the mesh client applies: resolving "${this.selection.service}" itself`);
      return;
    }
    this.#use(legsOf(path).map(({ group, weight }) => this.#watchLeg(compiled, group, weight, path.kind === "split" ? path.hash : [])), "");
  }

  #watchLeg(compiled: CompiledChain, group: string, weight: number, splitHash: readonly HashPolicySpec[]): WatchedLeg {
    const spec = compiled.groups.get(group)!;
    return {
      name: spec.primary,
      weight,
      balancer: spec.balancer,
      // As in the mesh client: a splitter's hash policies, when it has any, replace the resolver's.
      hash: splitHash.length > 0 ? splitHash : spec.hash,
      targets: [spec.primary, ...spec.failover].map((id) => this.#watchTarget(compiled.targets.get(id)!)),
    };
  }

  #own(): WatchedLeg {
    const { service } = this.selection;
    const target = this.#watchTarget({ id: service, service, subset: undefined, datacenter: "", local: true, filter: undefined, resolvable: true, connectTimeoutMs: undefined });
    return { name: service, weight: 100, balancer: undefined, hash: [], targets: [target] };
  }

  #watchTarget(target: TargetSpec): WatchedTarget {
    const same = target.service === this.selection.service;
    const { service: _service, tags, meta, filter, dc, ...timing } = this.selection;
    void _service;
    const filters = [same ? filter : undefined, target.filter].filter((f): f is string => Boolean(f));
    const resolver = consulResolver(this.consul, {
      ...timing,
      service: target.service,
      ...(same && tags?.length ? { tags } : {}),
      ...(same && meta ? { meta } : {}),
      ...(filters.length ? { filter: filters.map((f) => `(${f})`).join(" and ") } : {}),
      ...(target.local ? (dc ? { dc } : {}) : { dc: target.datacenter }),
    });
    const watched: WatchedTarget = { target, resolver, unsubscribe: resolver.subscribe(() => this.#report()) };
    return watched;
  }

  #use(legs: WatchedLeg[], why: string): void {
    const previous = this.#legs;
    this.#legs = legs;
    this.#why = why;
    this.#release(previous);
    // Report once every target has answered (or failed), so a failover target that has not
    // answered yet is not taken for empty; shared watches that answered already report at once.
    const settle = () => {
      if (this.#closed || this.#legs !== legs) return;
      if (settled(legs)) this.#report();
      else setTimeout(settle, 10).unref();
    };
    setImmediate(settle);
  }

  #release(legs: WatchedLeg[]): void {
    for (const leg of legs) {
      for (const watched of leg.targets) {
        watched.unsubscribe();
        watched.resolver.close();
      }
    }
  }

  #report(): void {
    if (this.#closed) return;
    const why = this.#why ? `; ${this.#why}` : "";
    const resolved = this.#legs.map((leg) => ({ leg, chosen: leg.targets.find((watched) => watched.resolver.instances.length > 0) }));
    const legs = resolved.map(({ leg, chosen }): ChainLeg => ({ name: leg.name, weight: leg.weight, instances: chosen?.resolver.instances ?? [], service: chosen?.target.service, balancer: leg.balancer, hash: leg.hash }));
    if (resolved.length === 1) {
      this.onUpdate({ legs, note: `${describeLeg(resolved[0]!.leg, resolved[0]!.chosen)}${why}` });
      return;
    }
    const shares = resolved.map(({ leg, chosen }) => `${leg.weight}% to "${leg.name}": ${describeLeg(leg, chosen)}`);
    this.onUpdate({ legs, note: `split ${shares.join(", ")}${why}` });
  }
}

/** Whether every target of every leg has answered (or failed): only then is an empty one known to be empty. */
function settled(legs: readonly WatchedLeg[]): boolean {
  return legs.every((leg) => leg.targets.every((watched) => watched.resolver.resolved || watched.resolver.lastError));
}

/**
 * The one path every call takes, if there is one: the chain's start (a resolver or a splitter),
 * or the place every route of its router leads to. Routes that differ only in what a resolution
 * cannot carry (a route's timeout and retries) still count as one path.
 */
function carriedPath(compiled: CompiledChain): NextSpec | undefined {
  if (!compiled.routes) return compiled.start;
  const first = compiled.routes[0]!.next;
  const key = JSON.stringify(first);
  return compiled.routes.every((route) => JSON.stringify(route.next) === key) ? first : undefined;
}

/** The legs of a path, one per resolver: legs of a split that lead to the same resolver add up. */
function legsOf(path: NextSpec): { group: string; weight: number }[] {
  if (path.kind === "group") return [{ group: path.group, weight: 100 }];
  const weights = new Map<string, number>();
  for (const leg of path.legs) weights.set(leg.group, (weights.get(leg.group) ?? 0) + leg.weight);
  return [...weights].map(([group, weight]) => ({ group, weight }));
}

/** A leg's part of the resolution note: how many instances of which target, or why none. */
function describeLeg(leg: WatchedLeg, chosen: WatchedTarget | undefined): string {
  const targets = leg.targets;
  if (chosen) {
    const failedOver = chosen !== targets[0] ? ` (failed over from "${targets[0]!.target.id}")` : "";
    return `${chosen.resolver.instances.length} passing instances of "${chosen.target.id}" in Consul${failedOver}`;
  }
  const primary = targets[0]!;
  const error = primary.resolver.lastError ? ` (${primary.resolver.lastError.message})` : "";
  const others = targets.length > 1 ? `, nor of its failover targets ${targets.slice(1).map((watched) => `"${watched.target.id}"`).join(", ")}` : "";
  return `no passing instance of "${primary.target.id}" in Consul${error}${others}`;
}
