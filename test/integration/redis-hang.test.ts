import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { OrderService } from "../../gen/meshkit/orders/v1/orders_pb.js";
import type { PrivateDatabase } from "../support/database.js";
import { eventually } from "../support/infra.js";
import type { PrivateRedis } from "../support/private-redis.js";
import { startPrivateStack, type PrivateStack } from "../support/private-stack.js";

describe("a Redis that stops answering without closing its connections (issue 13, case 3)", function () {
  this.timeout(90_000);
  const run = randomUUID().slice(0, 8);
  // A database of the test's own, with its Redis: in the shared one, the relays of other suites'
  // orders processes (each with its own Redis) may publish this test's events before its relay does.
  let stack: PrivateStack;
  let redis: PrivateRedis;
  let db: PrivateDatabase["pool"];

  before(async () => {
    stack = await startPrivateStack("redis_hang");
    redis = stack.redis;
    db = stack.database.pool;
  });
  after(() => stack?.close());

  it("holds no outbox row lock while it hangs, queries answer from PostgreSQL in bounded time, and everything lands once it answers again", async () => {
    const orders = await stack.start("src/reference/services/orders/main.ts", {
      SERVICE_NAME: `orders-redis-hang-${run}`,
      CONSUL_CHECK_INTERVAL: "1s",
      REDIS_COMMAND_TIMEOUT_MS: "500",
    });
    const client = createClient(OrderService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${orders.port}` }));
    const create = async (n: number) => (await client.createOrder({ idempotencyKey: `hang-${run}-${n}`, userId: "u", product: "p", quantity: 1, amountCents: 1n })).order!.id;
    const first = await create(0);
    await eventually("the first order in the read model", async () => ((await redis.client.hexists(`order:${first}`, "json")) ? true : undefined));

    // First Redis stops answering writes only (CLIENT PAUSE ... WRITE): reads still answer, so the
    // relay gets past its read-model check and hangs in the middle of publishing, on XADD.
    await redis.client.client("PAUSE", 20_000, "WRITE");
    const ids: string[] = [];
    try {
      // Commands write PostgreSQL only: they go on.
      for (let n = 1; n <= 5; n++) ids.push(await create(n));
      // Give the relay time to try to publish these and hang on Redis.
      await sleep(1500);
      // Their outbox rows are not locked: the relay does not sit in a transaction waiting on Redis.
      // (Before the fix it held them FOR UPDATE, and a pool connection, until Redis answered.)
      await eventually(
        "the unpublished events to be free of row locks",
        async () => {
          const attempt = await db.connect();
          try {
            await attempt.query("BEGIN");
            const { rowCount } = await attempt.query("SELECT id FROM outbox WHERE stream = 'events:orders' AND payload->>'id' = ANY($1) FOR UPDATE NOWAIT", [ids]);
            return rowCount === ids.length ? true : undefined;
          } catch (error) {
            if ((error as { code?: string }).code === "55P03") return undefined; // lock_not_available
            throw error;
          } finally {
            await attempt.query("ROLLBACK").catch(() => undefined);
            attempt.release();
          }
        },
        { timeoutMs: 8000, intervalMs: 300 },
      );
    } finally {
      await redis.client.client("UNPAUSE");
    }

    // Then Redis stops answering anything, its connections open (SIGSTOP).
    redis.pause();
    try {
      // A query tries the read model, gives up after the command timeout, and answers from
      // PostgreSQL: well inside the caller's deadline.
      const started = performance.now();
      const answer = await client.getOrder({ id: ids[0]! }, { timeoutMs: 5000 }).catch((error: unknown) => ConnectError.from(error));
      const ms = performance.now() - started;
      assert.ok(!(answer instanceof ConnectError), `GetOrder failed while Redis hung: ${answer instanceof ConnectError ? Code[answer.code] : ""}`);
      assert.equal(answer.order?.id, ids[0]);
      assert.ok(ms < 3000, `GetOrder took ${Math.round(ms)} ms`);

      redis.resume();
      // Once Redis answers, the backlog is published and projected: nothing was lost.
      await eventually(
        "the orders made while Redis hung in the read model",
        async () => ((await Promise.all(ids.map((id) => redis.client.hexists(`order:${id}`, "json")))).every(Boolean) ? true : undefined),
        { timeoutMs: 30_000, intervalMs: 250 },
      );
    } finally {
      redis.resume();
    }
  });

  it("publishes a batch another relay claimed and never stamped (it died) once that relay's lease has run out", async () => {
    const lease = await startPrivateStack("relay_lease");
    const { database, redis: leaseRedis } = lease;
    try {
      // Migrated by a first start; then an event as a relay that died mid-publish leaves it:
      // claimed for 3 more seconds, not published.
      await lease.start("src/reference/services/orders/main.ts", { SERVICE_NAME: `orders-lease-${run}`, CONSUL_CHECK_INTERVAL: "1s" });
      const order = { id: `lease-${run}`, user_id: "u", product: "p", quantity: 1, amount_cents: "1", status: "PENDING", created_at: new Date().toISOString(), updated_at: new Date().toISOString(), version: 1 };
      await database.pool.query("INSERT INTO outbox (stream, event_type, payload, publishing_until) VALUES ('events:orders', 'order.created', $1, now() + interval '3 seconds')", [JSON.stringify(order)]);
      const projected = async () => ((await leaseRedis.client.hexists(`order:${order.id}`, "json")) ? true : undefined);
      await sleep(1500);
      assert.equal(await projected(), undefined, "published while another relay's lease held it");
      await eventually("the event published once the lease ran out", projected, { timeoutMs: 10_000, intervalMs: 200 });
    } finally {
      await lease.close();
    }
  });
});
