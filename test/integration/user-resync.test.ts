import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import type { OutboxEvent } from "../../src/reference/events/outbox.js";
import { migrate } from "../../src/reference/stores/migrations.js";
import { projectUsers } from "../../src/reference/services/users/projection.js";
import { getUser } from "../../src/reference/services/users/queries.js";
import { upsertUsers } from "../../src/reference/services/users/upsert.js";
import { userFromReadModel, type UserInput } from "../../src/reference/services/users/user-record.js";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { testDatabase } from "../support/database.js";

/**
 * A re-sync of users the source did not change: PostgreSQL keeps their versions, the outbox gets
 * their ids only, and the read model still answers with the new last_synced_at. Real PostgreSQL
 * and Redis; the projection is fed the outbox rows in order, as the relay would.
 */
describe("user re-sync: unchanged users travel as ids, not as new versions", () => {
  const pool = testDatabase();
  const redis = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379");
  const prefix = `resync-${randomUUID().slice(0, 8)}-`;
  const input = (n: number, name = `User ${n}`): UserInput => ({ thirdPartyId: `${prefix}${n}`, name, email: `u${n}@example.com`, phone: "+15550000", status: "active" });
  let lastEventId = "0";

  /** The users.upserted events this test's writes appended since the last call. */
  const newEvents = async (): Promise<OutboxEvent[]> => {
    const { rows } = await pool.query<{ id: string; event_type: string; payload: Record<string, unknown> }>(
      "SELECT id::text, event_type, payload FROM outbox WHERE stream = 'events:users' AND id > $1 AND payload::text LIKE $2 ORDER BY id",
      [lastEventId, `%${prefix}%`],
    );
    if (rows.length) lastEventId = rows.at(-1)!.id;
    return rows.map((row) => ({ id: row.id, type: row.event_type, payload: row.payload }));
  };
  const stored = async () =>
    (await pool.query<{ third_party_id: string; version: string; last_synced_at: Date; updated_at: Date }>("SELECT third_party_id, version, last_synced_at, updated_at FROM users WHERE third_party_id LIKE $1 ORDER BY third_party_id", [`${prefix}%`])).rows;

  before(async () => {
    await migrate(pool);
    lastEventId = (await pool.query<{ id: string }>("SELECT coalesce(max(id), 0)::text AS id FROM outbox")).rows[0]!.id;
  });
  after(async () => {
    await pool.query("DELETE FROM users WHERE third_party_id LIKE $1", [`${prefix}%`]);
    await redis.del(...[0, 1, 2].map((n) => `user:${prefix}${n}`));
    redis.disconnect();
    await pool.end();
  });

  it("writes whole users once, then ids with the sync time, and only the changed user again", async () => {
    assert.equal(await upsertUsers(pool, [input(0), input(1), input(2)]), 3);
    const [created] = await newEvents();
    assert.deepEqual((created!.payload.users as { third_party_id: string }[]).map((u) => u.third_party_id), [0, 1, 2].map((n) => `${prefix}${n}`));
    assert.deepEqual(created!.payload.seen, []);
    const first = await stored();

    // The same users again: counted as synced, versions kept, only last_synced_at moves.
    assert.equal(await upsertUsers(pool, [input(0), input(1), input(2)]), 3);
    const [unchanged] = await newEvents();
    assert.deepEqual(unchanged!.payload.users, []);
    assert.deepEqual(unchanged!.payload.seen, [0, 1, 2].map((n) => `${prefix}${n}`));
    const second = await stored();
    for (const [n, row] of second.entries()) {
      assert.equal(row.version, "1");
      assert.deepEqual(row.updated_at, first[n]!.updated_at);
      assert.ok(row.last_synced_at > first[n]!.last_synced_at);
    }
    assert.equal(unchanged!.payload.synced_at, second[0]!.last_synced_at.toISOString());

    // One user changed: it travels whole, with its new version; the other two as ids.
    await upsertUsers(pool, [input(0), input(1, "Renamed"), input(2)]);
    const [oneChanged] = await newEvents();
    assert.deepEqual((oneChanged!.payload.users as { third_party_id: string; version: number }[]).map((u) => [u.third_party_id, Number(u.version)]), [[`${prefix}1`, 2]]);
    assert.deepEqual(oneChanged!.payload.seen, [`${prefix}0`, `${prefix}2`]);

    // The read model, fed those events (twice, as a redelivery would), answers what PostgreSQL says.
    for (const event of [created!, unchanged!, oneChanged!]) await projectUsers(redis, [event]);
    await projectUsers(redis, [unchanged!]); // a late redelivery must not move last_synced_at back
    const truth = await stored();
    for (const [n, row] of truth.entries()) {
      const [json, syncedAt] = await redis.hmget(`user:${row.third_party_id}`, "json", "synced_at");
      assert.ok(json, `user ${n} is not in the read model`);
      const inJson = new Date(JSON.parse(json).last_synced_at as string).getTime();
      // Users 0 and 2 never changed: their JSON is the first version's, and only synced_at is current.
      if (n !== 1) assert.ok(inJson < row.last_synced_at.getTime(), `user ${n}'s JSON was rewritten`);
      assert.equal(new Date(userFromReadModel(json, syncedAt ?? null).last_synced_at!).getTime(), row.last_synced_at.getTime(), `last_synced_at of user ${n}`);
      // And GetUser, which finds the user in the read model, answers the same.
      const user = await getUser(redis, pool, row.third_party_id);
      assert.equal(timestampDate(user.lastSyncedAt!).getTime(), row.last_synced_at.getTime());
      assert.equal(user.name, n === 1 ? "Renamed" : `User ${n}`);
    }
  });
});
