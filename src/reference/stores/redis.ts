import type { Redis as RedisClient } from "ioredis";
import type ioredis from "ioredis";
import type { EnvReader } from "../../platform/config.js";
import { requireInstrumented } from "./require-instrumented.js";

export type Redis = RedisClient;
const { Redis: RedisConstructor } = requireInstrumented("ioredis") as typeof ioredis;

export function redisUrlFromEnv(env: EnvReader): string {
  return env.string("REDIS_URL", "redis://127.0.0.1:6379");
}

/** `REDIS_COMMAND_TIMEOUT_MS`: how long any Redis command may take, in ms. Default 2000. */
export function redisCommandTimeoutFromEnv(env: EnvReader): number {
  return env.int("REDIS_COMMAND_TIMEOUT_MS", 2000, { min: 10, max: 600_000 });
}

export interface RedisOptions {
  /**
   * How long a command may wait for its reply, in ms, before it fails with "Command timed out".
   * Default 2000. A Redis that stops answering without closing the connection (hung, paused,
   * a network that drops packets) otherwise leaves every caller waiting for good.
   */
  commandTimeoutMs?: number;
  /**
   * The longest BLOCK (ms) this connection's blocking commands ask for (XREADGROUP ... BLOCK);
   * added to their timeout, so that a wait Redis was asked to make is not cut short. Default 0.
   */
  blockMs?: number;
}

/**
 * createRedis returns an ioredis connection that reconnects by itself (backoff up to 2 s), fails
 * commands fast while Redis is away (no offline queue growing without bound), and bounds every
 * command by `commandTimeoutMs`, so callers see errors and retry on their own schedule. A reply
 * that comes after its command timed out is still read and matched to it (ioredis keeps the
 * command queued), so the connection stays usable once Redis answers again.
 */
export function createRedis(url: string, onError: (error: Error) => void, options: RedisOptions = {}): Redis {
  const { commandTimeoutMs = 2000, blockMs = 0 } = options;
  const redis = new RedisConstructor(url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    retryStrategy: (attempt) => Math.min(100 * 2 ** attempt, 2000),
    lazyConnect: false,
    commandTimeout: commandTimeoutMs + blockMs,
    connectTimeout: Math.max(commandTimeoutMs, 1000),
  });
  redis.on("error", onError);
  return redis;
}
