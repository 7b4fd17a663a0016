import type { OutboxEvent } from "../../events/outbox.js";
import { MalformedEventError } from "../../events/malformed-event.js";
import { readModelWriter, statsKeys } from "../../events/read-model.js";
import type { Redis } from "../../stores/redis.js";
import { syncedAtField, userIndexKey, userKey, type UserRecord } from "./user-record.js";

/**
 * projectUsers applies user events to the read model: `user:{third_party_id}` holds the newest
 * version (JSON) and, for users a sync saw unchanged, the newest `synced_at` (see readUser),
 * `users:index` lists the ids, `stats:total_users` counts each user once, and
 * `stats:failed_tasks` is the largest running total of failed users seen (see recordSyncRun).
 */
export async function projectUsers(redis: Redis, events: OutboxEvent[]): Promise<void> {
  const writer = readModelWriter(redis);
  const index: string[] = [];
  for (const event of events) {
    if (event.type === "users.upserted") {
      const users = event.payload.users ?? [];
      if (!Array.isArray(users)) throw new MalformedEventError(`${event.type} ${event.id}: users is not an array`);
      for (const user of users as UserRecord[]) {
        if (typeof user?.third_party_id !== "string" || !Number.isSafeInteger(Number(user.version))) {
          throw new MalformedEventError(`${event.type} ${event.id}: a user without a third_party_id or an integer version`);
        }
        writer.putVersioned(userKey(user.third_party_id), statsKeys.users, Number(user.version), JSON.stringify(user));
        index.push("0", user.third_party_id);
      }
      const syncedAt = event.payload.synced_at;
      if (typeof syncedAt === "string") {
        for (const id of (event.payload.seen ?? []) as string[]) writer.putLater(userKey(id), syncedAtField, syncedAt);
      }
    } else if ((event.type === "users.sync_completed" || event.type === "users.failed_total") && event.payload.failed_total !== undefined) {
      // Events from before the running total carry none; the total written since counts them.
      writer.putMax(statsKeys.failedTasks, Number(event.payload.failed_total));
    }
  }
  await writer.flush();
  if (index.length > 0) await redis.zadd(userIndexKey, ...index);
}
