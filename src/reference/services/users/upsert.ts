import type pg from "pg";
import { appendEvents } from "../../events/outbox.js";
import { inTransaction, type PostgresPool } from "../../stores/postgres.js";
import { userColumns, type UserInput, type UserRecord } from "./user-record.js";

/** The counter of users that failed to sync, over all runs (see recordSyncRun, snapshot.ts). */
export const failedUsersCounter = "user_sync_failed";

export const usersStream = "events:users";

/**
 * The ON CONFLICT clause of both upsert paths. A user the source sends unchanged keeps its
 * version and updated_at, and only last_synced_at moves: the batch's event carries such a user
 * as its id alone (`seen`), so a re-sync of an unchanged source writes ids and one timestamp per
 * batch where it used to copy every whole user into the outbox and the stream again (about a
 * tenth of the bytes). RETURNING's `changed` tells the two apart: updated_at is now() (the
 * transaction's start) exactly for rows this statement inserted or changed.
 */
const contentChanged = "(users.name, users.email, users.phone, users.status) IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.email, EXCLUDED.phone, EXCLUDED.status)";
export const upsertConflictClause = `
  ON CONFLICT (third_party_id) DO UPDATE SET
    name = EXCLUDED.name, email = EXCLUDED.email, phone = EXCLUDED.phone, status = EXCLUDED.status,
    last_synced_at = now(),
    updated_at = CASE WHEN ${contentChanged} THEN now() ELSE users.updated_at END,
    version = CASE WHEN ${contentChanged} THEN users.version + 1 ELSE users.version END
  RETURNING ${userColumns}, updated_at = now() AS changed`;

/**
 * The batch's one event: `users`, the rows inserted or changed, whole; `seen`, the ids of those
 * the source sent unchanged, whose last_synced_at became `synced_at`.
 */
export async function appendUpserted(client: pg.PoolClient, rows: (UserRecord & { changed: boolean })[]): Promise<void> {
  if (rows.length === 0) return;
  const users = rows.filter((row) => row.changed).map(({ changed: _, ...user }) => user);
  const seen = rows.filter((row) => !row.changed).map((row) => row.third_party_id);
  await appendEvents(client, usersStream, [{ type: "users.upserted", payload: { users, seen, synced_at: rows[0]!.last_synced_at } }]);
}

/**
 * upsertUsers writes a batch in ONE statement (unnest of column arrays, `ON CONFLICT
 * (third_party_id) DO UPDATE`) plus one outbox event for the batch (see appendUpserted), in one
 * transaction, and returns how many users it wrote, changed or not. A batch naming one
 * id twice keeps the last (PostgreSQL refuses to update a row twice in one statement).
 *
 * Why unnest: bench/user-sync.bench.ts measures it against the two other ways a competent
 * engineer would write a batch upsert, a multi-row `INSERT ... VALUES` and `COPY` into a temporary
 * table then `INSERT ... SELECT`, with the same event in the same transaction (docs/benchmarks.md).
 */
export async function upsertUsers(pool: PostgresPool, users: readonly UserInput[]): Promise<number> {
  const unique = lastOfEachId(users);
  if (unique.length === 0) return 0;
  return inTransaction(pool, async (client) => {
    const { rows } = await client.query<UserRecord & { changed: boolean }>(
      `INSERT INTO users (third_party_id, name, email, phone, status, last_synced_at)
       SELECT id, name, email, phone, status, now()
       FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) AS u(id, name, email, phone, status)
       ${upsertConflictClause}`,
      [unique.map((u) => u.thirdPartyId), unique.map((u) => u.name), unique.map((u) => u.email), unique.map((u) => u.phone), unique.map((u) => u.status)],
    );
    await appendUpserted(client, rows);
    return rows.length;
  });
}

/** The batch with one user per id, the last one given (see upsertUsers). */
export function lastOfEachId(users: readonly UserInput[]): UserInput[] {
  return [...new Map(users.map((user) => [user.thirdPartyId, user])).values()];
}

/**
 * Records a finished sync run. Its failures feed `failed_tasks` in the status as a running total
 * kept in `counters` (the outbox that held each run's event is pruned): the event carries the new
 * total, which the projection keeps the largest of, so events arriving in any order or twice
 * leave the right total.
 */
export async function recordSyncRun(pool: PostgresPool, synced: number, failed: number, source: string): Promise<void> {
  await inTransaction(pool, async (client) => {
    const { rows } = await client.query<{ total: string }>(
      `INSERT INTO counters (name, value) VALUES ($1, $2)
       ON CONFLICT (name) DO UPDATE SET value = counters.value + EXCLUDED.value
       RETURNING value::text AS total`,
      [failedUsersCounter, failed],
    );
    await appendEvents(client, usersStream, [{ type: "users.sync_completed", payload: { synced, failed, source, failed_total: rows[0]!.total } }]);
  });
}
