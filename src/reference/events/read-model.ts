import type { Redis } from "../stores/redis.js";

/**
 * The Redis read model's write primitives, each one atomic Lua script, so that projections are
 * idempotent however often an event is delivered:
 *  - putVersioned stores an entity's JSON only if its version is newer than the stored one, and
 *    bumps a counter the first time the entity appears;
 *  - putMax sets a counter to a running total unless it holds a larger one already;
 *  - putLater sets one field of an entity only to a value that sorts after the stored one (ISO
 *    timestamps), so an event delivered late never moves it back.
 */
const putVersionedScript = `
local current = redis.call('HGET', KEYS[1], 'version')
if current and tonumber(current) >= tonumber(ARGV[2]) then return 0 end
if not current then redis.call('INCR', KEYS[2]) end
redis.call('HSET', KEYS[1], 'version', ARGV[2], 'json', ARGV[1])
return 1`;

const putMaxScript = `
local current = tonumber(redis.call('GET', KEYS[1]) or '-1')
if current >= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
return 1`;

const putLaterScript = `
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current and current >= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1`;

export const statsKeys = { users: "stats:total_users", orders: "stats:total_orders", failedTasks: "stats:failed_tasks" } as const;

export interface ReadModelWriter {
  putVersioned(key: string, counterKey: string, version: number, json: string): void;
  putMax(counterKey: string, total: number): void;
  putLater(key: string, field: string, value: string): void;
  /** Sends everything queued in one round trip; throws if any write failed. */
  flush(): Promise<void>;
}

export function readModelWriter(redis: Redis): ReadModelWriter {
  const pipeline = redis.pipeline();
  return {
    putVersioned(key, counterKey, version, json) {
      pipeline.eval(putVersionedScript, 2, key, counterKey, json, String(version));
    },
    putMax(counterKey, total) {
      pipeline.eval(putMaxScript, 1, counterKey, String(total));
    },
    putLater(key, field, value) {
      pipeline.eval(putLaterScript, 1, key, field, value);
    },
    async flush() {
      const results = (await pipeline.exec()) ?? [];
      const failed = results.find(([error]) => error);
      if (failed) throw failed[0];
    },
  };
}

/** Reads an entity's JSON from the read model, or undefined when it is not there (or Redis is down). */
export async function readEntity(redis: Redis, key: string): Promise<Record<string, unknown> | undefined> {
  try {
    const json = await redis.hget(key, "json");
    return json ? (JSON.parse(json) as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
