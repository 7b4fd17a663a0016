import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { eventually } from "../support/infra.js";
import { startPrivateStack, type PrivateStack } from "../support/private-stack.js";

/** Flat XRANGE fields as a record. */
const fieldsOf = (flat: string[]) => Object.fromEntries(Array.from({ length: flat.length / 2 }, (_, i) => [flat[2 * i]!, flat[2 * i + 1]!]));

describe("events that cannot be applied go to a dead-letter stream (issue 13, case 2)", function () {
  this.timeout(90_000);
  const run = randomUUID().slice(0, 8);
  // A Redis and a database of its own: with the shared database, this process's relay would
  // publish other suites' order events into this test's Redis, and theirs this one's into theirs.
  let stack: PrivateStack;

  before(async () => {
    stack = await startPrivateStack("dead_letter");
  });
  after(() => stack?.close());

  it("applies the good entries of a batch at once, and dead-letters the bad ones with the reason instead of redelivering them forever", async () => {
    const order = (id: string) => JSON.stringify({ id, user_id: "u", product: "p", quantity: 1, amount_cents: "1", status: "PENDING", created_at: new Date().toISOString(), updated_at: new Date().toISOString(), version: 1 });
    const good = `dl-${run}-good`;
    const wrongType = `dl-${run}-wrongtype`;
    // A key of the wrong type under the order's name: applying that order fails with WRONGTYPE on
    // every delivery, a failure the projector cannot tell from a passing one, so it spends its
    // delivery budget first.
    await stack.redis.client.set(`order:${wrongType}`, "not a hash");
    // Written before the service starts, so that its first read takes them as one batch.
    const c = stack.redis.client;
    await c.xadd("events:orders", "*", "id", "1", "type", "order.created", "payload", "{not json");
    await c.xadd("events:orders", "*", "id", "2", "type", "order.created", "payload", order(good));
    await c.xadd("events:orders", "*", "id", "3", "type", "order.created", "payload", order(wrongType));
    await c.xadd("events:orders", "*", "id", "4", "type", "order.created", "payload", "{}");

    const orders = await stack.start("src/reference/services/orders/main.ts", {
      SERVICE_NAME: `orders-dead-letter-${run}`,
      CONSUL_CHECK_INTERVAL: "1s",
      EVENTS_CLAIM_IDLE_MS: "300",
      EVENTS_MAX_DELIVERIES: "3",
      EVENTS_TRIM_INTERVAL_MS: "500",
    });

    // The good entry of the batch lands though its neighbours fail.
    await eventually("the good order in the read model", async () => ((await c.hexists(`order:${good}`, "json")) ? true : undefined), { timeoutMs: 10_000 });

    const dead = await eventually(
      "three entries in events:orders:dead",
      async () => {
        const entries = (await c.xrange("events:orders:dead", "-", "+")).map(([, flat]) => fieldsOf(flat));
        return entries.length >= 3 ? entries : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 250 },
    );
    const byId = Object.fromEntries(dead.map((entry) => [entry.id, entry]));
    assert.deepEqual(Object.keys(byId).sort(), ["1", "3", "4"]);
    assert.match(byId["1"]!.dead_reason!, /^malformed: the payload is not JSON/);
    assert.equal(byId["1"]!.payload, "{not json"); // the original fields, kept for a replay
    assert.match(byId["4"]!.dead_reason!, /^malformed: an order event without an id/);
    assert.match(byId["3"]!.dead_reason!, /^failed 3 deliveries: .*WRONGTYPE/);
    assert.equal(byId["3"]!.dead_deliveries, "3");
    assert.equal(byId["3"]!.dead_group, "orders-read-model");

    // Nothing pending any more, so nothing pins the trim bound: the stream is trimmed.
    const [pending] = (await c.xpending("events:orders", "orders-read-model")) as [number];
    assert.equal(pending, 0);
    await eventually("the consumed stream to be trimmed", async () => ((await c.xlen("events:orders")) <= 1 ? true : undefined), { timeoutMs: 10_000 });

    // Counted, for the alert EventsDeadLettered.
    const metrics = await (await fetch(`http://127.0.0.1:${orders.port}/metrics`)).text();
    const count = (kind: string) => Number(new RegExp(`^meshkit_events_dead_lettered_total\\{stream="events:orders",group="orders-read-model",kind="${kind}"\\} (\\S+)$`, "m").exec(metrics)?.[1]);
    assert.deepEqual({ malformed: count("malformed"), failed: count("failed") }, { malformed: 2, failed: 1 });

    // The replay docs/dead-letters.md describes: fix the cause, add the entry back, delete the copy.
    await c.del(`order:${wrongType}`);
    const [deadId, flat] = (await c.xrange("events:orders:dead", "-", "+")).find(([, f]) => fieldsOf(f).id === "3")!;
    const original = Object.entries(fieldsOf(flat)).filter(([name]) => !name.startsWith("dead_")).flat();
    await c.xadd("events:orders", "*", ...original);
    await c.xdel("events:orders:dead", deadId);
    await eventually("the replayed order in the read model", async () => ((await c.hexists(`order:${wrongType}`, "json")) ? true : undefined), { timeoutMs: 10_000 });
  });
});
