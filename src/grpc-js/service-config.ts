import type { ClientOptions } from "@grpc/grpc-js";
import type { DescService } from "@bufbuild/protobuf";
import { MethodOptions_IdempotencyLevel as Idempotency } from "@bufbuild/protobuf/wkt";
import { idempotentRetryInterceptor } from "./idempotent-retry.js";
import { peakEwmaPolicyName, registerPeakEwmaBalancer } from "./load-balancer-peak-ewma.js";

/** RecommendedServiceConfigOptions shape `recommendedServiceConfig`. */
export interface RecommendedServiceConfigOptions {
  /**
   * The services the channel calls (protobuf-es descriptors, e.g. `OrderService`). Their methods
   * that the proto marks `idempotency_level = NO_SIDE_EFFECTS` or `IDEMPOTENT` get the retry
   * policy; the others are never retried once sent, as in the mesh client. Default none: no
   * retry policy at all (grpc-js still retries transparently a request that never left).
   */
  services?: readonly DescService[];
  /** Attempts per call, the first included; 2 to 5 (grpc-js's ceiling). Default 3, as the mesh client. */
  maxAttempts?: number;
  /**
   * The policy under outlier detection: "round_robin" (default), or "meshkit_peak_ewma", the
   * mesh client's peak-EWMA picker (registered with grpc-js by this call).
   */
  balancer?: "round_robin" | typeof peakEwmaPolicyName;
}

/** A gRPC service config (https://github.com/grpc/grpc/blob/master/doc/service_config.md), as JSON. */
export interface ServiceConfigJson {
  loadBalancingConfig: Record<string, object>[];
  methodConfig: { name: { service: string; method?: string }[]; retryPolicy?: RetryPolicyJson }[];
  retryThrottling: { maxTokens: number; tokenRatio: number };
}

interface RetryPolicyJson {
  maxAttempts: number;
  initialBackoff: string;
  maxBackoff: string;
  backoffMultiplier: number;
  retryableStatusCodes: string[];
}

/** The codes the mesh client retries once a request may have been processed (src/client/retry/policy.ts). */
export const retryableStatusCodes = ["UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED"] as const;

/**
 * recommendedServiceConfig is the service config that makes a plain grpc-js channel on a
 * `consul:` target behave as close to the mesh client (`createMeshTransport`) as grpc-js allows.
 * Pass it as the channel option `grpc.service_config`, or use `recommendedClientOptions`, which
 * adds the interceptor that retries what the service config cannot (see below):
 *
 * ```ts
 * const client = new grpc.Client("consul:///orders", grpc.credentials.createInsecure(), {
 *   "grpc.service_config": JSON.stringify(recommendedServiceConfig({ services: [OrderService] })),
 * });
 * ```
 *
 * How each part maps to the mesh client:
 * - Balancing: `round_robin` over the instances Consul lists as passing (or, with `balancer`,
 *   `meshkit_peak_ewma`: the mesh client's default picker). grpc-js's
 *   `weighted_round_robin` takes its weights from ORCA load reports, not from the resolver, so
 *   Consul's `Weights.Passing` cannot steer it; round_robin skips instances whose connection is
 *   down at once, which is what a killed instance needs.
 * - Ejection: `outlier_detection` (gRFC A50) around it stands for the per-instance breaker:
 *   failure-percentage ejection at 50% failed calls with at least 10 calls per 10 s interval
 *   (the breaker's errorThresholdPercentage 50, volumeThreshold 10, 10 s window), ejected for
 *   10 s at first (the breaker's resetTimeout), at most half the instances at once, from 2
 *   instances up (A50's default minimum of 5 hosts would never eject in a small pool). A50 has no
 *   "5 failures in a row" trigger; the interval is the reaction time. And grpc-js counts every
 *   non-OK status as a failure, a caller's NOT_FOUND or INVALID_ARGUMENT included, where the
 *   breaker counts instance failures only: for a client whose calls often end in such codes,
 *   raise the threshold or leave outlier detection out. grpc-js reads these
 *   durations as `{ seconds, nanos }` objects, not proto-JSON strings.
 * - Retries: only for the idempotent methods of `services`, on UNAVAILABLE, DEADLINE_EXCEEDED and
 *   RESOURCE_EXHAUSTED, at most `maxAttempts`, with the mesh client's backoff: gRPC's is full
 *   jitter too (random(0, min(initial x 2^(n-1), max))), from 25 ms up to 1 s. A call whose
 *   response headers had arrived is committed (gRFC A6) and never retried by this policy, even
 *   when the instance dies before the trailers: `idempotentRetryInterceptor` covers that case.
 * - Retry throttling: the mesh client's budget allows retries up to 20% of requests plus 10 per
 *   second. gRPC's token bucket takes 1 token per failed attempt, gives back `tokenRatio` per
 *   successful call, and retries while more than half of `maxTokens` remain. tokenRatio 0.2 puts
 *   the steady-state limit where ours is: if a share p of attempts fails and each failure is
 *   retried, the budget holds while p/(1-p) <= 0.2 under both rules. maxTokens 20 gives a
 *   cushion of 10 failures, our 10 retries per second; unlike our floor it refills only with
 *   successes, never with time, so a client whose every call fails stops retrying after 10.
 */
export function recommendedServiceConfig(options: RecommendedServiceConfigOptions = {}): ServiceConfigJson {
  const maxAttempts = options.maxAttempts ?? 3;
  if (!Number.isInteger(maxAttempts) || maxAttempts < 2 || maxAttempts > 5) {
    throw new RangeError(`maxAttempts must be an integer from 2 to 5 (grpc-js's limits), got ${maxAttempts}`);
  }
  const balancer = options.balancer ?? "round_robin";
  if (balancer === peakEwmaPolicyName) registerPeakEwmaBalancer();
  else if (balancer !== "round_robin") throw new RangeError(`balancer must be "round_robin" or "${peakEwmaPolicyName}", got "${String(balancer)}"`);
  const idempotentMethods = (options.services ?? []).flatMap((service) =>
    service.methods
      .filter((method) => method.idempotency === Idempotency.NO_SIDE_EFFECTS || method.idempotency === Idempotency.IDEMPOTENT)
      .map((method) => ({ service: service.typeName, method: method.name })),
  );
  return {
    loadBalancingConfig: [
      {
        outlier_detection: {
          interval: { seconds: 10, nanos: 0 },
          base_ejection_time: { seconds: 10, nanos: 0 },
          max_ejection_time: { seconds: 60, nanos: 0 },
          max_ejection_percent: 50,
          failure_percentage_ejection: { threshold: 50, enforcement_percentage: 100, minimum_hosts: 2, request_volume: 10 },
          child_policy: [{ [balancer]: {} }],
        },
      },
    ],
    methodConfig: idempotentMethods.length
      ? [
          {
            name: idempotentMethods,
            retryPolicy: {
              maxAttempts,
              initialBackoff: "0.025s",
              maxBackoff: "1s",
              backoffMultiplier: 2,
              retryableStatusCodes: [...retryableStatusCodes],
            },
          },
        ]
      : [],
    retryThrottling: { maxTokens: 20, tokenRatio: 0.2 },
  };
}

/**
 * recommendedClientOptions are grpc-js client options: the channel option `grpc.service_config`
 * set to `recommendedServiceConfig(options)`, and `idempotentRetryInterceptor` for the same
 * services. Make one per client: grpc-js's Client takes the `interceptors` out of the object it
 * is given.
 *
 * ```ts
 * const client = new grpc.Client("consul:///orders", grpc.credentials.createInsecure(), recommendedClientOptions({ services: [OrderService] }));
 * ```
 */
export function recommendedClientOptions(options: RecommendedServiceConfigOptions = {}): ClientOptions {
  return {
    "grpc.service_config": JSON.stringify(recommendedServiceConfig(options)),
    "grpc.enable_retries": 1,
    interceptors: [idempotentRetryInterceptor({ services: options.services ?? [], ...(options.maxAttempts ? { maxAttempts: options.maxAttempts } : {}) })],
  };
}
