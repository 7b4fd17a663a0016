/**
 * meshkit for applications on @grpc/grpc-js: a `consul:` resolver that shares the mesh client's
 * Consul watch, and the service config that brings a grpc-js channel close to the mesh client.
 *
 * ```ts
 * import * as grpc from "@grpc/grpc-js";
 * import { registerConsulResolver, recommendedClientOptions } from "meshkit/grpc-js";
 * registerConsulResolver();
 * const client = new grpc.Client("consul:///orders", grpc.credentials.createInsecure(), recommendedClientOptions({ services: [OrderService] }));
 * ```
 */
export { registerConsulResolver, type RegisterConsulResolverOptions } from "./register.js";
export { recommendedServiceConfig, recommendedClientOptions, retryableStatusCodes, type RecommendedServiceConfigOptions, type ServiceConfigJson } from "./service-config.js";
export { idempotentRetryInterceptor, type IdempotentRetryOptions } from "./idempotent-retry.js";
export { parseConsulTarget, ConsulTargetError, type ConsulTarget } from "./consul-target.js";
export { registerPeakEwmaBalancer, peakEwmaPolicyName } from "./load-balancer-peak-ewma.js";
export { registerRandomBalancer, randomPolicyName } from "./load-balancer-random.js";
export { registerLeastRequestBalancer, leastRequestPolicyName } from "./load-balancer-least-request.js";
export { registerRingHashBalancer, ringHashPolicyName } from "./load-balancer-ring-hash.js";
export { registerWeightedTargetBalancer, weightedTargetPolicyName } from "./load-balancer-weighted-target.js";
export { checkGrpcJsVersion, supportedGrpcJs } from "./grpc-js-version.js";
export { meshChannelCredentials } from "./mesh-credentials.js";
