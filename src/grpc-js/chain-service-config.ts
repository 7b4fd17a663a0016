import { createRequire } from "node:module";
import * as grpc from "@grpc/grpc-js";
import type { Instance } from "../client/discovery/instance.js";
import type { ChainLeg } from "./chain-resolution.js";
import { leastRequestPolicyName, registerLeastRequestBalancer } from "./load-balancer-least-request.js";
import type { InstanceInfo } from "./load-balancer-mesh-balancer.js";
import { randomPolicyName, registerRandomBalancer } from "./load-balancer-random.js";
import { registerRingHashBalancer, ringHashPolicyName, type RingHashConfigJson } from "./load-balancer-ring-hash.js";
import { registerWeightedTargetBalancer, weightedTargetPolicyName, type WeightedTargetConfigJson } from "./load-balancer-weighted-target.js";

/** A service config as a resolver hands it to grpc-js (validated: durations parsed, names checked). */
export type ResolvedServiceConfig = Extract<NonNullable<Parameters<grpc.experimental.ResolverListener>[2]>, { ok: true }>["value"];

/** One entry of a `loadBalancingConfig` list: `{ <policy name>: <its config> }`. */
type LbConfigJson = Record<string, object>;

/**
 * grpc-js's own service-config validator. grpc-js does not export it, and a resolver must hand
 * the channel a validated config (a method's `timeout` as `{ seconds, nanos }`, for one): this
 * reads it from the same @grpc/grpc-js the application loads (a peer dependency, `~1.14.7`,
 * checked by assertSupportedGrpcJs), as grpc-js-version.ts reads its package.json.
 */
const validateServiceConfig = (createRequire(import.meta.url)("@grpc/grpc-js/build/src/service-config.js") as { validateServiceConfig(json: unknown): ResolvedServiceConfig }).validateServiceConfig;

/** registerChainBalancers registers the policies a chain's service config may name (registerConsulResolver calls it). */
export function registerChainBalancers(): void {
  registerRandomBalancer();
  registerLeastRequestBalancer();
  registerRingHashBalancer();
  registerWeightedTargetBalancer();
}

/** An instance's address as grpc-js writes it (`[v6]:port` for IPv6), the key meshkit policies find it by. */
function addressOf(instance: Instance): string {
  return grpc.experimental.subchannelAddressToString({ host: instance.address, port: instance.port });
}

/**
 * legPolicy is the grpc-js policy for a resolver's `LoadBalancer.Policy` (as compiled for the
 * mesh client, src/client/routing/compile.ts), undefined when it sets none:
 * - `round_robin`: grpc-js's `round_robin` (which, like every grpc-js policy, ignores Consul's weights);
 * - `random`: `meshkit_random` (grpc-js has no random policy), by Consul's weights;
 * - `least_request`: `meshkit_least_request`, two random choices on calls in flight, which is
 *   Envoy's LEAST_REQUEST with its default choice count (the mesh client's `least_outstanding`);
 * - `ring_hash`, `maglev`: `meshkit_ring_hash`, the mesh client's ring keyed by the headers the
 *   hash policies name (a maglev table is not built: as in the mesh client, a ring stands for it).
 * The meshkit policies get Consul's id and weight of each instance, so they balance as the mesh
 * client does and a ring puts its points where the mesh client's does.
 */
export function legPolicy(leg: ChainLeg): LbConfigJson | undefined {
  const balancer = leg.balancer;
  if (!balancer) return undefined;
  if (balancer.name === "round_robin") return { round_robin: {} };
  const instances: Record<string, InstanceInfo> = {};
  for (const instance of leg.instances) instances[addressOf(instance)] = { id: instance.id, weight: instance.weight };
  if (balancer.name === "random") return { [randomPolicyName]: { instances } };
  if (balancer.name === "least_outstanding") return { [leastRequestPolicyName]: { instances } };
  const ring: RingHashConfigJson = {
    instances,
    hash: leg.hash.map((policy) => ({ ...(policy.header !== undefined ? { header: policy.header } : { constant: policy.constant! }), terminal: policy.terminal }) as RingHashConfigJson["hash"][number]),
    ...(balancer.ring?.maxRingSize ? { maxRingSize: balancer.ring.maxRingSize } : {}),
  };
  return { [ringHashPolicyName]: ring };
}

/** The policy that ends an application's `loadBalancingConfig` entry: its own, or its outlier detection's child. */
function innermostPolicy(entry: LbConfigJson | undefined): LbConfigJson | undefined {
  const outlier = entry?.outlier_detection as { child_policy?: LbConfigJson[] } | undefined;
  return outlier ? innermostPolicy(outlier.child_policy?.[0]) : entry;
}

/** The application's entry with `policy` in its place: under its outlier detection, if it has one. */
function inPlaceOf(entry: LbConfigJson | undefined, policy: LbConfigJson): LbConfigJson {
  const outlier = entry?.outlier_detection as { child_policy?: LbConfigJson[] } | undefined;
  if (!outlier) return policy;
  return { outlier_detection: { ...outlier, child_policy: [inPlaceOf(outlier.child_policy?.[0], policy)] } };
}

/**
 * chainServiceConfig is the service config a `consul:` resolver sends with a resolution, or null
 * for none (the channel's own then applies, exactly as without a chain): null when the chain has
 * one leg and its resolver sets no `LoadBalancer.Policy`.
 *
 * grpc-js takes a resolver's service config *instead of* the channel's `grpc.service_config`
 * (ResolvingLoadBalancer.handleResolverResult: the default is used only when the resolver sends
 * null), retry policies and throttling included. So the chain's policy is merged into the
 * application's own config, `defaultServiceConfig` (the channel option's JSON text), and
 * everything else of it kept: its `methodConfig` (retryPolicy, timeouts), `retryThrottling`, and
 * an `outlier_detection` wrapping its policy, which then wraps the chain's. Only the first entry
 * of its `loadBalancingConfig` is kept: the one grpc-js would use.
 *
 * A split becomes `meshkit_weighted_target` (load-balancer-weighted-target.ts): each leg's
 * weight, its endpoints' addresses and its policy (the resolver's, else the application's own,
 * else grpc-js's default pick_first).
 *
 * Throws when the result is not a config grpc-js would apply as written (a policy that does not
 * parse would make grpc-js fall back to pick_first without a word).
 */
export function chainServiceConfig(legs: readonly ChainLeg[], defaultServiceConfig: string | undefined): ResolvedServiceConfig | null {
  const policies = legs.map(legPolicy);
  if (legs.length === 1 && !policies[0]) return null;
  const own = (defaultServiceConfig ? JSON.parse(defaultServiceConfig) : {}) as { loadBalancingConfig?: LbConfigJson[]; loadBalancingPolicy?: string };
  const ownEntry = own.loadBalancingConfig?.[0];
  let policy: LbConfigJson;
  if (legs.length === 1) policy = policies[0]!;
  else {
    const ownPolicy = innermostPolicy(ownEntry) ?? { pick_first: {} };
    const targets: WeightedTargetConfigJson["targets"] = {};
    legs.forEach((leg, i) => (targets[leg.name] = { weight: leg.weight, endpoints: leg.instances.map(addressOf), child_policy: [policies[i] ?? ownPolicy] }));
    policy = { [weightedTargetPolicyName]: { targets } };
  }
  // `loadBalancingPolicy` (the older field) is replaced too: grpc-js 1.14 reads only `loadBalancingConfig`.
  const { loadBalancingPolicy: _older, ...rest } = own;
  void _older;
  const merged = validateServiceConfig({ ...rest, loadBalancingConfig: [inPlaceOf(ownEntry, policy)] });
  // Parses every policy in it, the children included, as the channel will: throws if one does not.
  grpc.experimental.parseLoadBalancingConfig(merged.loadBalancingConfig[0]!);
  return merged;
}
