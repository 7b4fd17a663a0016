import * as grpc from "@grpc/grpc-js";
import type { ConsulResolverOptions } from "../client/discovery/consul.js";
import { readEnv, type HostPort } from "../platform/config.js";
import { createConsulClient, defaultConsulAddress, type ConsulClient } from "../platform/consul.js";
import { registerChainBalancers } from "./chain-service-config.js";
import { consulResolverClass } from "./consul-resolver.js";
import { assertSupportedGrpcJs } from "./grpc-js-version.js";

/** RegisterConsulResolverOptions configure `registerConsulResolver`. */
export interface RegisterConsulResolverOptions {
  /**
   * The Consul agent of `consul:///<service>` targets (those that name no agent): a client of the
   * `consul` package (`createConsulClient` from meshkit/platform) or an address. Default:
   * `CONSUL_HTTP_ADDR`, else 127.0.0.1:8500. Watches are shared per client object: give the
   * client your mesh transports use, and a grpc-js channel and a transport on the same service
   * share one blocking query.
   */
  consul?: ConsulClient | HostPort;
  /** ACL token sent to agents that a target names (`consul://host:port/...`). Default `CONSUL_HTTP_TOKEN`. */
  token?: string;
  /** Longest a blocking query waits for a change, in seconds. Default 30. */
  waitSeconds?: number;
  /** Least time between two queries, in ms. Default 100. */
  minQueryIntervalMs?: number;
  /** Longest wait between retries while Consul is unreachable, in ms. Default 10 000. */
  maxRetryDelayMs?: number;
  /** How long an empty answer right after the agent lost its state is not believed, in ms. Default 15 000. */
  resetGraceMs?: number;
  /**
   * Follow each service's discovery chain as far as a resolver can: its resolvers' subsets,
   * redirects and failover targets, their `LoadBalancer` policies and a splitter's weights
   * (README, "What meshkit/grpc-js gets of it"). Default true; a service with no config entries
   * resolves as without it.
   */
  discoveryChain?: boolean;
}

/**
 * registerConsulResolver registers the `consul` scheme with grpc-js, so that any grpc-js channel
 * can be created on `consul:///<service>` or
 * `consul://<agent host:port>/<service>?tag=<tag>&dc=<datacenter>&near=_agent` (tag may repeat).
 * It resolves to the instances Consul lists as passing, kept current by the mesh client's shared
 * blocking-query watch; see `consulResolverClass` for what happens while Consul is down or lists
 * none. Call it once, before creating channels; calling it again replaces the registration.
 *
 * ```ts
 * import * as grpc from "@grpc/grpc-js";
 * import { registerConsulResolver, recommendedClientOptions } from "meshkit/grpc-js";
 * registerConsulResolver();
 * const client = new grpc.Client("consul:///orders", grpc.credentials.createInsecure(), recommendedClientOptions({ services: [OrderService] }));
 * ```
 *
 * Throws when the @grpc/grpc-js this package loads is outside the tested range (`~1.14.7`): its
 * resolver API is experimental and changes between minor releases.
 */
export function registerConsulResolver(options: RegisterConsulResolverOptions = {}): void {
  assertSupportedGrpcJs();
  // The policies a chain's service config may name: grpc-js would fall back to pick_first,
  // silently, on a name not registered.
  registerChainBalancers();
  const token = options.token ?? process.env.CONSUL_HTTP_TOKEN;
  const defaultClient = (): ConsulClient => {
    if (options.consul && "agent" in options.consul) return options.consul;
    if (options.consul) return createConsulClient(options.consul as HostPort, token);
    const env = readEnv();
    const address = env.hostPort("CONSUL_HTTP_ADDR", defaultConsulAddress);
    env.done();
    return createConsulClient(address, token);
  };
  // One client per agent: the shared watches are keyed by client, so channels on the same
  // service of the same agent share one watch.
  let fallback: ConsulClient | undefined;
  const clients = new Map<string, ConsulClient>();
  const consulFor = (agent: HostPort | undefined): ConsulClient => {
    if (!agent) return (fallback ??= defaultClient());
    const key = `${agent.host}:${agent.port}`;
    let client = clients.get(key);
    if (!client) clients.set(key, (client = createConsulClient(agent, token)));
    return client;
  };
  const watch: Omit<ConsulResolverOptions, "service"> = {
    ...(options.waitSeconds !== undefined ? { waitSeconds: options.waitSeconds } : {}),
    ...(options.minQueryIntervalMs !== undefined ? { minQueryIntervalMs: options.minQueryIntervalMs } : {}),
    ...(options.maxRetryDelayMs !== undefined ? { maxRetryDelayMs: options.maxRetryDelayMs } : {}),
    ...(options.resetGraceMs !== undefined ? { resetGraceMs: options.resetGraceMs } : {}),
  };
  grpc.experimental.registerResolver("consul", consulResolverClass({ consulFor, watch, discoveryChain: options.discoveryChain ?? true }));
}
