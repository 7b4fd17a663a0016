import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { grpcFrame, rawCall } from "../support/raw-grpc.js";
import type { ServiceProcess } from "../support/service-process.js";
import type { PrivateRedis } from "../support/private-redis.js";
import { startPrivateStack, type PrivateStack } from "../support/private-stack.js";
import { eventually } from "../support/infra.js";

/**
 * A user-sync instance that starts beside a large backlog in its event stream (after a big sync
 * or a snapshot rebuild: events of 500 or 1,000 users each, some left pending by an instance that died)
 * must keep answering calls while its projection works through it.
 *
 * Until this test, the projector read and claimed 500 entries at a time and applied them as one
 * batch: with 500 users per entry that is one synchronous stretch of JSON parsing and a pipeline
 * of 250,000 scripts, which held the event loop for seconds (7 s measured on a lightly loaded
 * box, beyond 10 s under load: the intermittent "no grpc-status" in bad-input.test.ts, whose
 * instance joined the shared stream's group and claimed such a backlog 15 s after it started).
 */
describe("projection backlog: an instance keeps answering while it applies a large backlog", function () {
  this.timeout(180_000);
  const run = randomUUID().slice(0, 8);
  const usersPerEntry = 1000; // a sync's page (USER_SOURCE_PAGE_SIZE's default) is one event
  const pendingEntries = 300; // read by a consumer that then died: claimed by the new instance
  const unreadEntries = 100; // never read: delivered to the new instance by XREADGROUP
  let stack: PrivateStack;
  let redis: PrivateRedis;
  let users: ServiceProcess | undefined;

  before(async () => {
    // A Redis and a database of this run's own: the backlog is exactly what this test wrote.
    stack = await startPrivateStack("projection_backlog");
    redis = stack.redis;
  });
  after(async () => {
    await stack?.close();
  });

  it("answers every call within 2 s while it projects 400,000 users, and projects them all", async () => {
    const stream = "events:users";
    const group = "users-read-model";
    await redis.client.xgroup("CREATE", stream, group, "0", "MKSTREAM");
    const now = new Date().toISOString();
    const appendEntries = async (first: number, count: number) => {
      for (let e = first; e < first + count; e += 10) {
        const pipeline = redis.client.pipeline();
        for (let k = e; k < Math.min(first + count, e + 10); k++) {
          const batch = Array.from({ length: usersPerEntry }, (_, i) => {
            const id = `backlog-${run}-${k * usersPerEntry + i}`;
            return { third_party_id: id, name: `User ${id}`, email: `${id}@example.com`, phone: "+15550000", status: "active", version: "1", created_at: now, updated_at: now, last_synced_at: now };
          });
          pipeline.xadd(stream, "*", "id", String(k + 1), "type", "users.upserted", "payload", JSON.stringify({ users: batch, seen: [], synced_at: now }));
        }
        await pipeline.exec();
      }
    };
    await appendEntries(0, pendingEntries);
    // A consumer that read them and died before acknowledging: they stay pending with it.
    await redis.client.xreadgroup("GROUP", group, `died-${run}`, "COUNT", pendingEntries, "STREAMS", stream, ">");
    await appendEntries(pendingEntries, unreadEntries);
    const totalUsers = (pendingEntries + unreadEntries) * usersPerEntry;

    users = await stack.start("src/reference/services/users/main.ts", {
      CONSUL_CHECK_INTERVAL: "1s",
      SERVICE_NAME: `user-sync-backlog-${run}`,
      SYNC_INTERVAL_MS: "0",
      // Entries idle this long are claimed: the dead consumer's, at once.
      EVENTS_CLAIM_IDLE_MS: "1000",
    });

    // Calls, one after another, until the whole backlog is applied; each one's latency kept.
    const projecting = performance.now();
    const latencies: number[] = [];
    let applied = false;
    const caughtUp = eventually(
      "the backlog projected",
      async () => (Number(await redis.client.get("stats:total_users")) === totalUsers && (await redis.client.xpending(stream, group))[0] === 0 ? true : undefined),
      { timeoutMs: 120_000, intervalMs: 200 },
    ).finally(() => (applied = true));
    const calling = (async () => {
      while (!applied) {
        const started = performance.now();
        const answer = await rawCall(users!.port, "/grpc.health.v1.Health/Check", grpcFrame(Buffer.alloc(0)));
        latencies.push(performance.now() - started);
        assert.equal(answer.grpcStatus, 0, `health check answered ${answer.httpStatus} ${answer.grpcStatus} ${answer.grpcMessage}`);
      }
    })();
    await Promise.all([caughtUp, calling]);

    const worst = Math.max(...latencies);
    console.log(`      projected ${totalUsers} users in ${Math.round(performance.now() - projecting)} ms; ${latencies.length} calls meanwhile, the slowest ${Math.round(worst)} ms`);
    assert.ok(latencies.length > 0, "no call was made");
    assert.ok(worst < 2000, `a call took ${Math.round(worst)} ms while the projection applied the backlog`);
    assert.equal(users.child.exitCode, null, "the service died");
  });
});
