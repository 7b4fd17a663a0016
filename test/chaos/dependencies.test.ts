import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import pg from "pg";
import { OrderService } from "../../gen/meshkit/orders/v1/orders_pb.js";
import { eventually, grpcCheckStatus } from "../support/infra.js";
import { runLoad } from "../support/load.js";
import { startPrivatePostgres, type PrivatePostgres } from "../support/private-postgres.js";
import { killProcess, startServiceProcess, type ServiceProcess } from "../support/service-process.js";

describe("chaos: PostgreSQL restarted under load", function () {
  this.timeout(120_000);
  const run = randomUUID().slice(0, 8);
  let database: PrivatePostgres;
  let orders: ServiceProcess;

  before(async () => {
    database = await startPrivatePostgres();
    orders = await startServiceProcess("src/reference/services/orders/main.ts", {
      SERVICE_NAME: `orders-pg-chaos-${run}`,
      CONSUL_CHECK_INTERVAL: "1s",
      PGPORT: String(database.port),
      PGDATABASE: "postgres",
    });
  });
  after(async () => {
    await killProcess(orders);
    await database?.stop();
  });

  it("loses no acknowledged order, answers UNAVAILABLE while it is down, and recovers with no restart", async () => {
    const client = createClient(OrderService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${orders.port}` }));
    const acknowledged: string[] = [];
    const codes = new Map<Code, number>();
    /** The codes of the calls that began and ended while PostgreSQL was down (stopped, not yet restarting). */
    const duringOutage = new Map<Code, number>();
    let okDuringOutage = 0;
    let down = 0; // increments when PostgreSQL has stopped, and again when its restart begins
    let n = 0;
    // Crash PostgreSQL at 1 s, bring it back at 3 s; load for 6 s.
    const outage = (async () => {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      await database.stop();
      down = 1;
      await new Promise((resolve) => setTimeout(resolve, 2000));
      down = 2;
      await database.start();
    })();
    const result = await runLoad(
      async () => {
        const startedDown = down === 1;
        try {
          const reply = await client.createOrder({ idempotencyKey: `pg-${run}-${n++}`, userId: "u", product: "p", quantity: 1, amountCents: 1n }, { timeoutMs: 2000 });
          acknowledged.push(reply.order!.id);
          if (startedDown && down === 1) okDuringOutage++;
        } catch (error) {
          const code = ConnectError.from(error).code;
          codes.set(code, (codes.get(code) ?? 0) + 1);
          if (startedDown && down === 1) duringOutage.set(code, (duringOutage.get(code) ?? 0) + 1);
          throw error;
        }
      },
      { durationMs: 6000, concurrency: 4, maxCalls: 20_000 },
    );
    await outage;
    const byName = (counts: Map<Code, number>) => JSON.stringify(Object.fromEntries([...counts].map(([c, k]) => [Code[c], k])));
    console.log(`      ${result.calls} calls, ${acknowledged.length} acknowledged, failures by code: ${byName(codes)}; calls begun and ended while it was down: ${byName(duringOutage)}, ${okDuringOutage} OK`);
    // While PostgreSQL is down, every call fails, and fails with UNAVAILABLE: at once, telling
    // the caller to retry later, not waiting out its deadline and never UNKNOWN/INTERNAL.
    assert.ok(duringOutage.size > 0, "no call began and ended while PostgreSQL was down: was it really stopped?");
    assert.deepEqual([...duringOutage.keys()].map((code) => Code[code]), ["Unavailable"], `calls while PostgreSQL was down failed with ${byName(duringOutage)}`);
    assert.equal(okDuringOutage, 0, "a command succeeded while PostgreSQL was down");
    // Calls caught by the crash itself or by the restart may also run into their deadline.
    for (const code of codes.keys()) assert.ok(code === Code.Unavailable || code === Code.DeadlineExceeded, `failed with ${Code[code]}`);
    assert.equal(orders.child.exitCode, null, `the service died:\n${orders.output.slice(-20).join("\n")}`);

    // Every acknowledged order is in the restarted database.
    const db = new pg.Client({ host: "127.0.0.1", port: database.port, user: "postgres", database: "postgres" });
    await db.connect();
    try {
      const { rows } = await db.query("SELECT count(*)::int AS n FROM orders WHERE id = ANY($1::uuid[])", [acknowledged]);
      assert.equal(rows[0].n, acknowledged.length);
    } finally {
      await db.end();
    }
    // The same process serves again, and Consul sees it healthy, with nobody restarting it.
    await eventually("a command to succeed again", async () =>
      (await client.createOrder({ idempotencyKey: `pg-${run}-after`, userId: "u", product: "p", quantity: 1, amountCents: 1n }).catch(() => undefined)) ? true : undefined,
    );
    await eventually("Consul's check to pass", async () => ((await grpcCheckStatus(`orders-pg-chaos-${run}`, orders.instanceId)) === "passing" ? true : undefined));
    assert.equal(orders.child.exitCode, null);
  });
});
