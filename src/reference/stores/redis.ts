import type { Redis as RedisClient } from "ioredis";
import type ioredis from "ioredis";
import type { EnvReader } from "../../platform/config.js";
import { requireInstrumented } from "./require-instrumented.js";

export type Redis = RedisClient;
const { Redis: RedisConstructor } = requireInstrumented("ioredis") as typeof ioredis;

export function redisUrlFromEnv(env: EnvReader): string {
  return env.string("REDIS_URL", "redis://127.0.0.1:6379");
}

/**
 * createRedis returns an ioredis connection that reconnects by itself (backoff up to 2 s) and
 * fails commands fast while Redis is away (no offline queue growing without bound), so callers
 * see errors and retry on their own schedule.
 */
export function createRedis(url: string, onError: (error: Error) => void): Redis {
  const redis = new RedisConstructor(url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    retryStrategy: (attempt) => Math.min(100 * 2 ** attempt, 2000),
    lazyConnect: false,
  });
  redis.on("error", onError);
  return redis;
}
