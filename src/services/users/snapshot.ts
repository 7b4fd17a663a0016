import type pg from "pg";
import { failedUsersCounter, usersStream } from "./upsert.js";
import { userColumns } from "./user-record.js";

/**
 * snapshotUsers appends to the outbox, on `client` inside a transaction, the users read model's
 * whole state: every user, as `users.upserted` events of 500, and the failure total. Written in
 * SQL so that 100,000 users never pass through this process. Projected like any other event:
 * versions make it safe however it interleaves with events written meanwhile.
 */
export async function snapshotUsers(client: pg.PoolClient): Promise<void> {
  await client.query(
    `INSERT INTO outbox (stream, event_type, payload)
     SELECT $1, 'users.upserted', jsonb_build_object('users', jsonb_agg(to_jsonb(u) - 'batch' ORDER BY u.third_party_id), 'seen', '[]'::jsonb)
     FROM (SELECT ${userColumns}, (row_number() OVER (ORDER BY third_party_id) - 1) / 500 AS batch FROM users) u
     GROUP BY u.batch ORDER BY u.batch`,
    [usersStream],
  );
  await client.query(
    `INSERT INTO outbox (stream, event_type, payload)
     SELECT $1, 'users.failed_total', jsonb_build_object('failed_total', value) FROM counters WHERE name = $2`,
    [usersStream, failedUsersCounter],
  );
}
