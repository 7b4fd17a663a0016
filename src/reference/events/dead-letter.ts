import { Counter, register as defaultRegistry, type Registry } from "prom-client";
import type { Redis } from "../stores/redis.js";

/** The dead-letter stream of `stream`: where entries no projection could apply are kept. */
export const deadLetterStream = (stream: string) => `${stream}:dead`;

/**
 * How many entries a dead-letter stream keeps at most (approximately: `MAXLEN ~`): a flood of bad
 * events must not fill Redis. The oldest go first; the alert EventsDeadLettered fires long before.
 */
const deadLetterMaxLength = 100_000;

/** A stream entry as XREADGROUP and XAUTOCLAIM return it: its id and flat [field, value, ...]. */
export type StreamEntry = [id: string, fields: string[]];

const countersByRegistry = new WeakMap<Registry, Counter<"stream" | "group" | "kind">>();

/**
 * deadLetterCounter is `meshkit_events_dead_lettered_total{stream,group,kind}` in `registry`:
 * entries moved to a dead-letter stream, `kind` "malformed" (never appliable, moved at once) or
 * "failed" (still failing after the delivery budget). Alert EventsDeadLettered watches it.
 */
export function deadLetterCounter(registry: Registry = defaultRegistry): Counter<"stream" | "group" | "kind"> {
  let counter = countersByRegistry.get(registry);
  if (!counter) {
    counter = new Counter({
      name: "meshkit_events_dead_lettered_total",
      help: "Stream entries moved to the dead-letter stream (<stream>:dead), by stream, consumer group and kind (malformed, failed).",
      labelNames: ["stream", "group", "kind"],
      registers: [registry],
    });
    countersByRegistry.set(registry, counter);
  }
  return counter;
}

/**
 * moveToDeadLetter appends `entry` to `<stream>:dead` with why it died, and acknowledges it in
 * `group`, in one MULTI: the entry leaves the pending list (so it is no longer claimed again and
 * no longer pins the trim bound, see stream-trim.ts) only once its copy is safe. The copy keeps
 * every original field and adds `dead_source_id`, `dead_group`, `dead_reason`, `dead_deliveries`
 * and `dead_at` (ISO time). See docs/dead-letters.md for inspecting and replaying.
 */
export async function moveToDeadLetter(
  redis: Redis,
  stream: string,
  group: string,
  entry: StreamEntry,
  death: { reason: string; deliveries: number },
): Promise<void> {
  const [id, fields] = entry;
  const results = await redis
    .multi()
    .xadd(
      deadLetterStream(stream),
      "MAXLEN",
      "~",
      deadLetterMaxLength,
      "*",
      ...fields,
      "dead_source_id",
      id,
      "dead_group",
      group,
      // Bounded: a reason is an error message, and one event must not carry a megabyte of it.
      "dead_reason",
      death.reason.slice(0, 1000),
      "dead_deliveries",
      String(death.deliveries),
      "dead_at",
      new Date().toISOString(),
    )
    .xack(stream, group, id)
    .exec();
  const failed = results?.find(([error]) => error);
  if (failed) throw failed[0];
}

/** How often `group` has delivered entry `id` (XPENDING's delivery counter), 0 when it is not pending. */
export async function deliveryCount(redis: Redis, stream: string, group: string, id: string): Promise<number> {
  const pending = (await redis.xpending(stream, group, id, id, 1)) as [string, string, number, number][];
  return pending[0]?.[3] ?? 0;
}
