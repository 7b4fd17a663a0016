import type pg from "pg";
import { appendEvents } from "../../events/outbox.js";
import { inTransaction, type PostgresPool } from "../../platform/postgres.js";
import { userColumns, type UserInput, type UserRecord } from "./user-record.js";

export const usersStream = "events:users";

/**
 * upsertUsers writes a batch in ONE statement (unnest of column arrays, `ON CONFLICT
 * (third_party_id) DO UPDATE`) plus one outbox event carrying the batch, in one transaction.
 * A batch naming one id twice keeps the last (PostgreSQL refuses to update a row twice in one
 * statement).
 */
export async function upsertUsers(pool: PostgresPool, users: readonly UserInput[]): Promise<number> {
  const unique = [...new Map(users.map((user) => [user.thirdPartyId, user])).values()];
  if (unique.length === 0) return 0;
  return inTransaction(pool, async (client) => {
    const { rows } = await client.query<UserRecord>(
      `INSERT INTO users (third_party_id, name, email, phone, status, last_synced_at)
       SELECT id, name, email, phone, status, now()
       FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) AS u(id, name, email, phone, status)
       ON CONFLICT (third_party_id) DO UPDATE SET
         name = EXCLUDED.name, email = EXCLUDED.email, phone = EXCLUDED.phone, status = EXCLUDED.status,
         updated_at = now(), last_synced_at = now(), version = users.version + 1
       RETURNING ${userColumns}`,
      [unique.map((u) => u.thirdPartyId), unique.map((u) => u.name), unique.map((u) => u.email), unique.map((u) => u.phone), unique.map((u) => u.status)],
    );
    await appendEvents(client, usersStream, [{ type: "users.upserted", payload: { users: rows } }]);
    return rows.length;
  });
}

/**
 * upsertUsersRowByRow is the naive path, one statement per user, kept only as the baseline that
 * bench/user-sync.bench.ts measures the batched path against.
 */
export async function upsertUsersRowByRow(pool: PostgresPool, users: readonly UserInput[]): Promise<number> {
  return inTransaction(pool, async (client: pg.PoolClient) => {
    const rows: UserRecord[] = [];
    for (const user of users) {
      const result = await client.query<UserRecord>(
        `INSERT INTO users (third_party_id, name, email, phone, status, last_synced_at)
         VALUES ($1, $2, $3, $4, $5, now())
         ON CONFLICT (third_party_id) DO UPDATE SET
           name = EXCLUDED.name, email = EXCLUDED.email, phone = EXCLUDED.phone, status = EXCLUDED.status,
           updated_at = now(), last_synced_at = now(), version = users.version + 1
         RETURNING ${userColumns}`,
        [user.thirdPartyId, user.name, user.email, user.phone, user.status],
      );
      rows.push(result.rows[0]!);
    }
    await appendEvents(client, usersStream, [{ type: "users.upserted", payload: { users: rows } }]);
    return rows.length;
  });
}

/** Records a finished sync run (its failures feed `failed_tasks` in the status). */
export async function recordSyncRun(pool: PostgresPool, synced: number, failed: number, source: string): Promise<void> {
  await inTransaction(pool, (client) => appendEvents(client, usersStream, [{ type: "users.sync_completed", payload: { synced, failed, source } }]));
}
