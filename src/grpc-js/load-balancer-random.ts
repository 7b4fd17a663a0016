import { randomBalancer } from "../client/balancing/random.js";
import { parseInstances, registerMeshBalancerPolicy, type MeshBalancerConfigJson } from "./load-balancer-mesh-balancer.js";

/** The policy's name in a service config: `{ "meshkit_random": {} }`. */
export const randomPolicyName = "meshkit_random";

/**
 * registerRandomBalancer registers `meshkit_random` with grpc-js: each call to a READY endpoint
 * drawn at random, uniformly, or in proportion to Consul's weights when the config's `instances`
 * give different ones (the mesh client's `random`). It stands for Consul's
 * `LoadBalancer.Policy = "random"`; grpc-js 1.14 has no random policy of its own. Safe to call
 * more than once.
 */
export function registerRandomBalancer(): void {
  registerMeshBalancerPolicy<MeshBalancerConfigJson>({
    name: randomPolicyName,
    parse: (json) => parseInstances(json, randomPolicyName),
    balancer: () => randomBalancer(),
    readsLoad: false,
  });
}
