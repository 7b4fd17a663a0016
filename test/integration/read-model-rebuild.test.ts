import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import type { OutboxEvent } from "../../src/reference/events/outbox.js";
import { appendEvents } from "../../src/reference/events/outbox.js";
import { pruneOutbox } from "../../src/reference/events/outbox-retention.js";
import { readModelEpochKey, startOutboxRelay } from "../../src/reference/events/relay.js";
import { createLogger } from "../../src/platform/log.js";
import { statsKeys } from "../../src/reference/events/read-model.js";
import { migrate } from "../../src/reference/stores/migrations.js";
import { inTransaction } from "../../src/reference/stores/postgres.js";
import { projectUsers } from "../../src/reference/services/users/projection.js";
import { snapshotUsers } from "../../src/reference/services/users/snapshot.js";
import { failedUsersCounter, recordSyncRun, upsertUsers } from "../../src/reference/services/users/upsert.js";
import { eventually } from "../support/infra.js";
import { startPrivateRedis, type PrivateRedis } from "../support/private-redis.js";
import { testDatabase } from "../support/database.js";

/**
 * The outbox is pruned, so a read model Redis lost is rebuilt from the tables: real PostgreSQL,
 * and a Redis of the test's own standing for the empty one.
 */
describe("outbox retention and rebuilding the read model from a snapshot", function () {
  this.timeout(60_000);
  const pool = testDatabase(3);
  let redis: PrivateRedis;

  before(async () => {
    await migrate(pool);
    redis = await startPrivateRedis();
  });
  after(async () => {
    await redis?.close();
    await pool.end();
  });

  it("prunes only published rows older than the retention, in batches", async () => {
    const stream = `test:retention:${randomUUID()}`;
    const insert = (published: string | null, count: number) =>
      pool.query(`INSERT INTO outbox (stream, event_type, payload, published_at) SELECT $1, 'x', '{}', ${published ?? "NULL"} FROM generate_series(1, $2)`, [stream, count]);
    await insert("now() - interval '2 hours'", 25);
    await insert("now() - interval '10 seconds'", 3);
    await insert(null, 4); // old but never published: kept whatever its age
    await pool.query("UPDATE outbox SET created_at = now() - interval '3 hours' WHERE stream = $1 AND published_at IS NULL", [stream]);
    assert.equal(await pruneOutbox(pool, [stream], 3_600_000, 10), 25);
    const { rows } = await pool.query<{ published: boolean; n: number }>("SELECT published_at IS NOT NULL AS published, count(*)::int AS n FROM outbox WHERE stream = $1 GROUP BY 1 ORDER BY 1", [stream]);
    assert.deepEqual(rows.map((row) => [row.published, row.n]), [[false, 4], [true, 3]]);
    await pool.query("DELETE FROM outbox WHERE stream = $1", [stream]);
  });

  it("tries the rebuild again when the snapshot fails, instead of leaving the read model empty", async () => {
    const stream = `test:relay:${randomUUID()}`;
    let attempts = 0;
    const relay = startOutboxRelay({
      pool,
      redis: redis.client,
      streams: [stream],
      log: createLogger("relay-test").child({}, { level: "silent" }),
      snapshot: async (client) => {
        if (++attempts === 1) throw new Error("PostgreSQL went away mid-snapshot");
        await appendEvents(client, stream, [{ type: "snapshot", payload: { attempt: attempts } }]);
      },
    });
    try {
      await eventually("the second snapshot to be published", async () => ((await redis.client.xlen(stream)) === 1 ? true : undefined), { timeoutMs: 10_000, intervalMs: 100 });
      assert.equal(attempts, 2);
      assert.ok(await redis.client.exists(readModelEpochKey([stream])), "the epoch is set once the rebuild succeeded");
    } finally {
      await relay.stop();
      await pool.query("DELETE FROM outbox WHERE stream = $1", [stream]);
      await redis.client.del(stream, readModelEpochKey([stream]));
    }
  });

  it("rebuilds every user and the failure total from a snapshot into an empty Redis", async () => {
    const prefix = `rebuild-${randomUUID().slice(0, 8)}-`;
    const input = (n: number) => ({ thirdPartyId: `${prefix}${n}`, name: `User ${n}`, email: `u${n}@example.com`, phone: "+15550000", status: "active" });
    await upsertUsers(pool, [input(0), input(1)]);
    await upsertUsers(pool, [input(0), { ...input(1), name: "Renamed" }]); // user 1 at version 2
    await recordSyncRun(pool, 2, 3, "test");
    const total = Number((await pool.query<{ value: string }>("SELECT value FROM counters WHERE name = $1", [failedUsersCounter])).rows[0]!.value);
    assert.ok(total >= 3);

    // What the relay does when Redis comes back empty, then what the projection does with it.
    const before = (await pool.query<{ id: string }>("SELECT coalesce(max(id), 0)::text AS id FROM outbox")).rows[0]!.id;
    await inTransaction(pool, snapshotUsers);
    const { rows } = await pool.query<{ id: string; event_type: string; payload: Record<string, unknown> }>(
      "SELECT id::text, event_type, payload FROM outbox WHERE stream = 'events:users' AND id > $1 ORDER BY id",
      [before],
    );
    const events: OutboxEvent[] = rows.map((row) => ({ id: row.id, type: row.event_type, payload: row.payload }));
    await pool.query("DELETE FROM outbox WHERE id = ANY($1::bigint[])", [events.map((event) => event.id)]); // nobody else may publish them
    const users = Number((await pool.query<{ n: string }>("SELECT count(*) AS n FROM users")).rows[0]!.n);
    assert.equal(events.filter((event) => event.type === "users.upserted").length, Math.ceil(users / 500));
    for (let i = 0; i < events.length; i += 20) await projectUsers(redis.client, events.slice(i, i + 20));

    assert.equal(Number(await redis.client.get(statsKeys.users)), users, "each user counted once");
    assert.equal(Number(await redis.client.get(statsKeys.failedTasks)), total);
    const renamed = JSON.parse((await redis.client.hget(`user:${prefix}1`, "json"))!) as { name: string; version: number };
    assert.deepEqual([renamed.name, Number(renamed.version)], ["Renamed", 2]);
    assert.ok(await redis.client.zscore("users:index", `${prefix}0`), "user 0 missing from the id index");

    // A sync run's event arriving late (a smaller total) does not move the total back.
    await projectUsers(redis.client, [{ id: "0", type: "users.sync_completed", payload: { failed: 1, failed_total: String(total - 1) } }]);
    assert.equal(Number(await redis.client.get(statsKeys.failedTasks)), total);
    await pool.query("DELETE FROM users WHERE third_party_id LIKE $1", [`${prefix}%`]);
  });
});
