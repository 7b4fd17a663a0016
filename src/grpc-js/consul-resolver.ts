import * as grpc from "@grpc/grpc-js";
import { consulResolver, type ConsulResolverOptions } from "../client/discovery/consul.js";
import type { Instance } from "../client/discovery/instance.js";
import type { Resolver as InstanceResolver } from "../client/discovery/resolver.js";
import type { ConsulClient } from "../platform/consul.js";
import type { HostPort } from "../platform/config.js";
import { parseConsulTarget, type ConsulTarget } from "./consul-target.js";
import { ChainResolution, type ChainResolutionUpdate } from "./chain-resolution.js";
import { chainServiceConfig, type ResolvedServiceConfig } from "./chain-service-config.js";
import { addressKey } from "./load-balancer-mesh-balancer.js";
import { meshAddressBook } from "./mesh-address-book.js";

/** What `grpc.experimental.registerResolver` takes (grpc-js does not export the type by name). */
export type ResolverConstructor = Parameters<typeof grpc.experimental.registerResolver>[1];

/** How the grpc-js resolver finds the Consul client for a target and tunes its watch. */
export interface ConsulResolverSource {
  /** The client of `agent` (undefined: the default agent), one per address, so watches are shared. */
  consulFor(agent: HostPort | undefined): ConsulClient;
  watch: Omit<ConsulResolverOptions, "service" | "tags" | "dc" | "near" | "meta" | "filter">;
  /** Follow each service's discovery chain as far as a resolver can (chain-resolution.ts). Default true. */
  discoveryChain?: boolean;
}

/**
 * consulResolverClass returns the grpc-js resolver class for the `consul` scheme. Each channel's
 * resolver is one more handle on the mesh client's shared blocking-query watch
 * (src/client/discovery/consul.ts), so a grpc-js channel and a mesh transport asking for the same
 * service of the same agent share one watch, and follow the same rules:
 * - while Consul is unreachable the last known instances keep serving (the watch keeps them and
 *   reports nothing new, so the channel keeps its endpoints);
 * - an honest empty answer is passed on (an empty list, then an error, see `#report`): calls fail
 *   fast with UNAVAILABLE, saying that no instance passes;
 * - before the first answer calls wait (grpc-js queues them until their deadline).
 * With `discoveryChain` (the default) it resolves what the service's discovery chain names, as
 * far as one resolution can carry it: its resolvers' subsets, redirects and failover targets
 * (chain-resolution.ts), their load-balancer policies and a splitter's weights, as a service
 * config merged into the channel's own (chain-service-config.ts).
 */
export function consulResolverClass(source: ConsulResolverSource): ResolverConstructor {
  return class ConsulGrpcResolver implements grpc.experimental.Resolver {
    readonly #target: ConsulTarget;
    readonly #listener: grpc.experimental.ResolverListener;
    /** The channel's own service config (the `grpc.service_config` option), which a chain's policy is merged into. */
    readonly #defaultServiceConfig: string | undefined;
    #instances: InstanceResolver | undefined;
    #unsubscribe: (() => void) | undefined;
    #chain: ChainResolution | undefined;

    constructor(target: grpc.experimental.GrpcUri, listener: grpc.experimental.ResolverListener, channelOptions: grpc.ChannelOptions = {}) {
      // grpc-js called getDefaultAuthority with this target before, so it parses.
      this.#target = parseConsulTarget(target.authority, target.path);
      this.#listener = listener;
      const own: unknown = channelOptions["grpc.service_config"];
      this.#defaultServiceConfig = typeof own === "string" ? own : undefined;
    }

    /**
     * Starts watching on the first call; afterwards the watch pushes every change, so a later
     * call has nothing to pull, except when the set is empty: grpc-js asks again when its
     * balancer went IDLE with calls waiting, which round_robin does when a connection it had
     * dropped reports late, after the empty set; reporting it again fails those calls fast.
     */
    updateResolution(): void {
      if (this.#chain) {
        const chain = this.#chain;
        setImmediate(() => chain.report());
        return;
      }
      if (this.#instances) {
        const instances = this.#instances;
        if (instances.resolved && instances.instances.length === 0) setImmediate(() => this.#report(instances, instances.instances));
        return;
      }
      const { agent, service, tags, dc, near, mesh } = this.#target;
      const selection: ConsulResolverOptions = {
        ...source.watch,
        service,
        ...(tags.length ? { tags } : {}),
        ...(dc ? { dc } : {}),
        ...(near ? { near } : {}),
        ...(mesh ? { connect: true } : {}),
      };
      if (source.discoveryChain !== false) {
        const chain = new ChainResolution(source.consulFor(agent), selection, (update) => {
          if (this.#chain === chain) this.#send(update);
        });
        this.#chain = chain;
        return;
      }
      const instances = consulResolver(source.consulFor(agent), selection);
      this.#instances = instances;
      this.#unsubscribe = instances.subscribe((set) => this.#report(instances, set));
      // A watch shared with another channel may have answered already: it will not call again
      // until the set changes. (Never synchronously: grpc-js forbids it inside updateResolution.)
      if (instances.resolved) setImmediate(() => this.#report(instances, instances.instances));
    }

    destroy(): void {
      if (this.#target.mesh) meshAddressBook.withdraw(this.#target.service, this);
      this.#chain?.close();
      this.#chain = undefined;
      this.#unsubscribe?.();
      this.#instances?.close();
      this.#instances = undefined;
      this.#unsubscribe = undefined;
    }

    #report(from: InstanceResolver, set: readonly Instance[]): void {
      if (this.#instances !== from) return; // destroyed (or restarted) since
      const { service } = this.#target;
      const why = from.lastError ? ` (${from.lastError.message})` : "";
      const note = set.length ? `${set.length} passing instances of "${service}" in Consul` : `no passing instance of "${service}" in Consul${why}`;
      this.#send({ legs: [{ name: service, weight: 100, instances: set, service, balancer: undefined, hash: [] }], note });
    }

    #send({ legs, note }: ChainResolutionUpdate): void {
      // Every leg's instances in one list (an instance in two legs once): outlier detection above
      // a split must see them all; the split's config says which leg each belongs to.
      // In the mesh, which service Consul lists at each address: the credentials accept that
      // service's SPIFFE ID there (a redirect or failover to another service, mesh-address-book.ts).
      const serviceAt = new Map<string, string>();
      const endpoints: grpc.experimental.Endpoint[] = [];
      for (const leg of legs) {
        for (const instance of leg.instances) {
          const endpoint = { addresses: [{ host: instance.address, port: instance.port }] };
          const key = addressKey(endpoint);
          if (serviceAt.has(key)) continue;
          serviceAt.set(key, leg.service ?? this.#target.service);
          endpoints.push(endpoint);
        }
      }
      if (this.#target.mesh) meshAddressBook.publish(this.#target.service, this, serviceAt);
      let serviceConfig: grpc.experimental.StatusOr<ResolvedServiceConfig> | null = null;
      try {
        const config = chainServiceConfig(legs, this.#defaultServiceConfig);
        if (config) serviceConfig = grpc.experimental.statusOrFromValue(config);
      } catch (error) {
        // A merged config grpc-js would not apply as written: the channel's own policy names one
        // that is not registered (grpc-js then runs pick_first), for one. The channel's own
        // config applies, and the note says why.
        note = `${note}; the chain's balancing cannot be carried (${error instanceof Error ? error.message : String(error)}): the channel's own service config applies`;
      }
      this.#listener(grpc.experimental.statusOrFromValue(endpoints), {}, serviceConfig, note);
      // grpc-js 1.14's round_robin, given an empty list, drops its endpoints but then settles in
      // IDLE, where calls queue until their deadline instead of failing fast. An error after it,
      // with no endpoint left, puts it in TRANSIENT_FAILURE: calls fail at once with UNAVAILABLE
      // and this note. (An error alone would keep the old endpoints: round_robin ignores errors
      // while it has any.)
      // (The same service config again: null would switch the channel back to its own policy.)
      if (!endpoints.length) this.#listener(grpc.experimental.statusOrFromError({ code: grpc.status.UNAVAILABLE, details: note }), {}, serviceConfig, note);
    }

    /** The authority of calls (`:authority`): the service name. Throws on a malformed target, so the channel is refused at once. */
    static getDefaultAuthority(target: grpc.experimental.GrpcUri): string {
      return parseConsulTarget(target.authority, target.path).service;
    }
  };
}
