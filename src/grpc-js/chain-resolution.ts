import { consulResolver, type ConsulResolverOptions } from "../client/discovery/consul.js";
import type { Instance } from "../client/discovery/instance.js";
import type { Resolver as InstanceResolver } from "../client/discovery/resolver.js";
import { watchDiscoveryChain, type ChainWatch } from "../client/routing/chain-watch.js";
import { compileChain, type TargetSpec } from "../client/routing/compile.js";
import type { ConsulClient } from "../platform/consul.js";

/** What a chain resolution tells its channel: the instances to use now, and why. */
export interface ChainResolutionUpdate {
  instances: readonly Instance[];
  /** The resolution note (grpc-js shows it in errors when no instance is left). */
  note: string;
}

/** One target of the chain's resolver, watched. */
interface WatchedTarget {
  readonly target: TargetSpec;
  readonly resolver: InstanceResolver;
  readonly unsubscribe: () => void;
}

/**
 * ChainResolution is what a grpc-js channel on `consul:` can carry of a service's discovery chain:
 * the chain's resolver (its subset's filter, a redirect, its failover targets in order), not
 * per-call routing. It watches the chain (the mesh client's shared watch) and, when the chain
 * starts at a resolver (no router, no splitter) or a router whose every route leads to one
 * resolver, resolves that resolver's target and its failover targets, each through the shared
 * health watch of its selection (the subset's filter passed to Consul, its datacenter, the mesh
 * view when asked). The channel gets the first target, in order, with a passing instance: a
 * list-level failover (a resolver sees Consul's health, not the channel's connection failures).
 * A chain with splits or routes to several targets cannot be carried by one address list: the
 * channel then resolves the service itself, as without a chain, and its resolution note says so.
 * Before the first chain answer (up to `firstAnswerTimeoutMs`) nothing is reported, so calls
 * wait; a chain that cannot be read leaves the service itself.
 */
export class ChainResolution {
  #watch: ChainWatch;
  #unsubscribeChain: () => void;
  #targets: WatchedTarget[] = [];
  #why = "";
  #chainKnown = false;
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
    const known = this.#watch.current;
    if (known) setImmediate(() => this.#apply(known.chain));
    else if (this.#watch.failing) setImmediate(() => this.#fallBack(`the discovery chain is unavailable (${this.#watch.failing!.message})`));
  }

  /** Reports again what applies now (grpc-js asks after its balancer went idle with calls waiting). */
  report(): void {
    if (this.#chainKnown && this.#targets.every((watched) => watched.resolver.resolved || watched.resolver.lastError)) this.#report();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#firstTimer);
    this.#unsubscribeChain();
    this.#watch.close();
    this.#release(this.#targets);
    this.#targets = [];
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
    clearTimeout(this.#firstTimer);
    const compiled = compileChain(chain, this.selection.service);
    if ("error" in compiled) {
      this.#use([this.#own()], `the discovery chain cannot be used (${compiled.error}): resolving "${this.selection.service}" itself`);
      return;
    }
    // The one resolver every call reaches, if there is one: the start, or the one every route leads to.
    const nexts = compiled.routes ? compiled.routes.map((route) => route.next) : [compiled.start!];
    const groups = new Set(nexts.map((next) => (next.kind === "group" ? next.group : "split")));
    const only = groups.size === 1 && !groups.has("split") ? compiled.groups.get([...groups][0]!) : undefined;
    if (!only) {
      this.#use([this.#own()], `the discovery chain of "${this.selection.service}" splits or routes calls per request, which only the mesh client applies: resolving "${this.selection.service}" itself`);
      return;
    }
    const targets = [only.primary, ...only.failover].map((id) => compiled.targets.get(id)!);
    this.#use(targets.map((target) => this.#watchTarget(target)), "");
  }

  #own(): WatchedTarget {
    const { service } = this.selection;
    return this.#watchTarget({ id: service, service, subset: undefined, datacenter: "", local: true, filter: undefined, resolvable: true, connectTimeoutMs: undefined });
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

  #use(targets: WatchedTarget[], why: string): void {
    const previous = this.#targets;
    this.#targets = targets;
    this.#why = why;
    this.#release(previous);
    // Report once every target has answered (or failed), so a failover target that has not
    // answered yet is not taken for empty; shared watches that answered already report at once.
    const settle = () => {
      if (this.#closed || this.#targets !== targets) return;
      if (targets.every((watched) => watched.resolver.resolved || watched.resolver.lastError)) this.#report();
      else setTimeout(settle, 10).unref();
    };
    setImmediate(settle);
  }

  #release(targets: WatchedTarget[]): void {
    for (const watched of targets) {
      watched.unsubscribe();
      watched.resolver.close();
    }
  }

  #report(): void {
    if (this.#closed) return;
    const targets = this.#targets;
    const chosen = targets.find((watched) => watched.resolver.instances.length > 0);
    const why = this.#why ? `; ${this.#why}` : "";
    if (chosen) {
      const failedOver = chosen !== targets[0] ? ` (failed over from "${targets[0]!.target.id}")` : "";
      this.onUpdate({ instances: chosen.resolver.instances, note: `${chosen.resolver.instances.length} passing instances of "${chosen.target.id}" in Consul${failedOver}${why}` });
      return;
    }
    const primary = targets[0]!;
    const error = primary.resolver.lastError ? ` (${primary.resolver.lastError.message})` : "";
    const others = targets.length > 1 ? `, nor of its failover targets ${targets.slice(1).map((watched) => `"${watched.target.id}"`).join(", ")}` : "";
    this.onUpdate({ instances: [], note: `no passing instance of "${primary.target.id}" in Consul${error}${others}${why}` });
  }
}
