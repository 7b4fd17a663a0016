import { peakEwmaBalancer } from "../client/balancing/peak-ewma.js";
import { parseInstances, registerMeshBalancerPolicy, type MeshBalancerConfigJson } from "./load-balancer-mesh-balancer.js";

/** The policy's name in a service config: `{ "loadBalancingConfig": [{ "meshkit_peak_ewma": {} }] }`. */
export const peakEwmaPolicyName = "meshkit_peak_ewma";

/**
 * registerPeakEwmaBalancer registers the `meshkit_peak_ewma` load-balancing policy with grpc-js:
 * the mesh client's peak-EWMA picker (power of two choices on latency x calls in flight, per
 * unit of Consul weight when the config gives `instances`) for grpc-js channels. Safe to call
 * more than once. `recommendedServiceConfig({ balancer: "meshkit_peak_ewma" })` calls it: a
 * service config naming an unregistered policy would make grpc-js fall back to pick_first
 * without a word. Throws on a @grpc/grpc-js outside `~1.14.7`.
 */
export function registerPeakEwmaBalancer(): void {
  registerMeshBalancerPolicy<MeshBalancerConfigJson>({
    name: peakEwmaPolicyName,
    parse: (json) => parseInstances(json, peakEwmaPolicyName),
    balancer: () => peakEwmaBalancer(),
    readsLoad: true,
  });
}
