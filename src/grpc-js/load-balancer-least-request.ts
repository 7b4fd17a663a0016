import { leastOutstandingBalancer } from "../client/balancing/least-outstanding.js";
import { parseInstances, registerMeshBalancerPolicy, type MeshBalancerConfigJson } from "./load-balancer-mesh-balancer.js";

/** The policy's name in a service config: `{ "meshkit_least_request": {} }`. */
export const leastRequestPolicyName = "meshkit_least_request";

/**
 * registerLeastRequestBalancer registers `meshkit_least_request` with grpc-js: of two random
 * endpoints, the one with fewer calls in flight per unit of weight (the mesh client's
 * `least_outstanding`). It stands for Consul's `LoadBalancer.Policy = "least_request"`, which is
 * Envoy's LEAST_REQUEST with its default choice count of 2: the same rule. grpc-js 1.14 has no
 * such policy of its own. Safe to call more than once.
 */
export function registerLeastRequestBalancer(): void {
  registerMeshBalancerPolicy<MeshBalancerConfigJson>({
    name: leastRequestPolicyName,
    parse: (json) => parseInstances(json, leastRequestPolicyName),
    balancer: () => leastOutstandingBalancer(),
    readsLoad: true,
  });
}
