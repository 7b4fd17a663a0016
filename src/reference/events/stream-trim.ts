import type { Redis } from "../stores/redis.js";

/**
 * trimConsumedEntries removes from `stream` the entries every consumer group has read and
 * acknowledged, and returns how many it removed. Without it a stream keeps every event ever
 * published, and Redis memory grows with each sync (a first sync of 100,000 users adds ~29 MB of
 * batches; see `make bench-sync`).
 *
 * The bound is the slowest group's: the oldest entry still pending in any group (delivered, not
 * yet acknowledged, as a consumer that died holds until another claims it), else the last entry
 * the group was given. `XTRIM MINID` removes only entries below it, exactly (not `~`, which would
 * keep up to a whole node of consumed entries; the cost is small at one call every few seconds).
 *
 * A stream without groups is left alone: a projector about to create its group at "0" would miss
 * what was trimmed. A group nobody consumes any more holds the bound back for good; remove it
 * with `XGROUP DESTROY`.
 */
export async function trimConsumedEntries(redis: Redis, stream: string): Promise<number> {
  let groups: unknown[][];
  try {
    groups = (await redis.xinfo("GROUPS", stream)) as unknown[][];
  } catch (error) {
    if (String(error).includes("no such key")) return 0;
    throw error;
  }
  if (groups.length === 0) return 0;
  let bound: string | undefined;
  for (const flat of groups) {
    const group = fieldsOf(flat);
    let groupBound = String(group["last-delivered-id"]);
    if (Number(group.pending) > 0) {
      const [, oldestPending] = (await redis.xpending(stream, String(group.name))) as [number, string | null, string | null, unknown];
      if (oldestPending) groupBound = oldestPending;
    }
    if (bound === undefined || compareIds(groupBound, bound) < 0) bound = groupBound;
  }
  if (!bound || bound === "0-0") return 0;
  return (await redis.xtrim(stream, "MINID", bound)) as number;
}

/**
 * removeIdleConsumers deletes from `group` the consumers idle longer than `idleMs` that hold no
 * pending entry, and returns how many. Every process consumes under its own instance id, so
 * without this a group keeps one consumer per process that ever ran. A consumer holding pending
 * entries is kept whatever its age: deleting it would drop those entries from the group's
 * pending list, and no one would claim them again.
 */
export async function removeIdleConsumers(redis: Redis, stream: string, group: string, idleMs: number): Promise<number> {
  let removed = 0;
  for (const flat of (await redis.xinfo("CONSUMERS", stream, group)) as unknown[][]) {
    const consumer = fieldsOf(flat);
    if (Number(consumer.pending) > 0 || Number(consumer.idle) <= idleMs) continue;
    // Should a consumer silent this long read again between XINFO and here, what it read leaves
    // the pending list with it; it still applies those entries (acknowledging them is then a
    // no-op). Only its crash before applying them would lose them: a window we accept.
    await redis.xgroup("DELCONSUMER", stream, group, String(consumer.name));
    removed++;
  }
  return removed;
}

/** XINFO answers with flat [name, value, name, value, ...] lists. */
function fieldsOf(flat: unknown[]): Record<string, unknown> {
  const record: Record<string, unknown> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) record[String(flat[i])] = flat[i + 1];
  return record;
}

/** Orders stream ids ("ms-seq"), which do not compare as strings or as numbers. */
export function compareIds(a: string, b: string): number {
  const [aMs = 0n, aSeq = 0n] = a.split("-").map(BigInt);
  const [bMs = 0n, bSeq = 0n] = b.split("-").map(BigInt);
  if (aMs !== bMs) return aMs < bMs ? -1 : 1;
  return aSeq === bSeq ? 0 : aSeq < bSeq ? -1 : 1;
}
