import type pg from "pg";
import { appendSnapshot } from "../../events/snapshot.js";
import { failedUsersCounter, usersStream } from "./upsert.js";
import { userColumns } from "./user-record.js";

/**
 * snapshotUsers appends to the outbox, on `client` inside a transaction, the users read model's
 * whole state: every user, as `users.upserted` events of 500, and the failure total. Projected
 * like any other event: versions make it safe however it interleaves with events written meanwhile.
 */
export async function snapshotUsers(client: pg.PoolClient): Promise<void> {
  await appendSnapshot(client, { stream: usersStream, eventType: "users.upserted", field: "users", select: `SELECT ${userColumns} FROM users`, orderBy: "third_party_id", extra: { seen: [] } });
  await client.query(
    `INSERT INTO outbox (stream, event_type, payload)
     SELECT $1, 'users.failed_total', jsonb_build_object('failed_total', value) FROM counters WHERE name = $2`,
    [usersStream, failedUsersCounter],
  );
}
