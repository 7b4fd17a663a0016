import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import path from "node:path";
import { ViolationsSchema } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { Registry } from "prom-client";
import { OrderService, OrderStatus } from "../../gen/meshkit/orders/v1/orders_pb.js";
import { StatusService } from "../../gen/meshkit/status/v1/status_pb.js";
import { UserSyncService } from "../../gen/meshkit/users/v1/users_pb.js";
import { createMeshTransport } from "../../src/client/index.js";
import { startUserSource, type UserSourceServer } from "../../src/reference/dev/user-source.js";
import { consul, eventually, grpcurl, jaegerQueryUrl } from "../support/infra.js";
import { runLoad } from "../support/load.js";
import type { PrivateRedis } from "../support/private-redis.js";
import { startPrivateStack, type PrivateStack } from "../support/private-stack.js";
import { killProcess, projectRoot, startServiceProcess, type ServiceProcess } from "../support/service-process.js";
import { Redis } from "ioredis";
import type { PrivateDatabase } from "../support/database.js";

const userCount = Number(process.env.SYNC_TEST_USERS ?? 100_000);

describe("reference services: orders, user-sync and status as real processes", function () {
  this.timeout(300_000);
  const run = randomUUID().slice(0, 8);
  const names = { orders: `orders-${run}`, users: `user-sync-${run}`, status: `status-${run}` };
  const prefix = `t${run}-`;
  let orders: ServiceProcess, users: ServiceProcess, status: ServiceProcess;
  let source: UserSourceServer;
  // A database and a Redis of this run's own, so that the totals the status reports can be
  // checked exactly: the shared ones keep the totals of every earlier run and of the suites
  // running beside this one.
  let stack: PrivateStack;
  let db: PrivateDatabase["pool"];
  let redis: Redis;

  before(async () => {
    stack = await startPrivateStack("services");
    db = stack.database.pool;
    redis = stack.redis.client;
    source = await startUserSource(userCount, { prefix });
    const common = { CONSUL_CHECK_INTERVAL: "1s" };
    [orders, users, status] = await Promise.all([
      stack.start("src/reference/services/orders/main.ts", { ...common, SERVICE_NAME: names.orders }),
      stack.start("src/reference/services/users/main.ts", { ...common, SERVICE_NAME: names.users, USER_SOURCE_URL: source.url, SYNC_INTERVAL_MS: "0" }),
      stack.start("src/reference/services/status/main.ts", { ...common, SERVICE_NAME: names.status, STATUS_SERVICES: `${names.users},${names.orders}` }),
    ]);
  });
  after(async () => {
    // The processes first, then the source; the 100,000 synced users go with the private
    // database and Redis.
    await stack?.close();
    await source?.close();
  });

  const target = (service: ServiceProcess) => `127.0.0.1:${service.port}`;
  const ordersClient = () => createClient(OrderService, createGrpcTransport({ baseUrl: `http://${target(orders)}` }));

  it("lists, describes and answers every RPC through grpcurl and server reflection", async () => {
    for (const [service, name] of [[orders, "meshkit.orders.v1.OrderService"], [users, "meshkit.users.v1.UserSyncService"], [status, "meshkit.status.v1.StatusService"]] as const) {
      const listed = await grpcurl("-plaintext", target(service), "list");
      assert.match(listed, new RegExp(name.replaceAll(".", "\\.")));
      assert.match(listed, /grpc\.health\.v1\.Health/);
      assert.match(await grpcurl("-plaintext", target(service), "describe", name), /rpc \w+/);
      assert.deepEqual(JSON.parse(await grpcurl("-plaintext", target(service), "grpc.health.v1.Health/Check")), { status: "SERVING" });
    }
    const created = JSON.parse(await grpcurl("-plaintext", "-d", JSON.stringify({ idempotencyKey: `grpcurl-${run}`, userId: "u1", product: "pen", quantity: 3, amountCents: "450" }), target(orders), "meshkit.orders.v1.OrderService/CreateOrder"));
    assert.equal(created.created, true);
    const fetched = JSON.parse(await grpcurl("-plaintext", "-d", JSON.stringify({ id: created.order.id }), target(orders), "meshkit.orders.v1.OrderService/GetOrder"));
    assert.equal(fetched.order.product, "pen");
    const processed = JSON.parse(await grpcurl("-plaintext", "-d", '{"limit": 1000}', target(orders), "meshkit.orders.v1.OrderService/ProcessOrders"));
    assert.ok(Number(processed.processed ?? 0) >= 1);
    const imported = JSON.parse(await grpcurl("-plaintext", "-d", `{"user":{"thirdPartyId":"${prefix}imp1","email":"a@example.com"}} {"user":{"thirdPartyId":"${prefix}imp2","email":"not-an-email"}}`, target(users), "meshkit.users.v1.UserSyncService/ImportUsers"));
    assert.deepEqual(imported, { synced: 1, failed: 1 });
    const user = JSON.parse(await grpcurl("-plaintext", "-d", `{"thirdPartyId":"${prefix}imp1"}`, target(users), "meshkit.users.v1.UserSyncService/GetUser"));
    assert.equal(user.user.email, "a@example.com");
    // The read model is eventually consistent: the projection may not have indexed imp1 yet.
    await eventually("ListUsers to page to the imported user", async () => {
      const listed = JSON.parse(await grpcurl("-plaintext", "-d", `{"pageSize": 1, "pageToken": "${prefix}imp0"}`, target(users), "meshkit.users.v1.UserSyncService/ListUsers"));
      return listed.users?.[0]?.thirdPartyId === `${prefix}imp1` ? true : undefined;
    });
    const systemStatus = JSON.parse(await grpcurl("-plaintext", target(status), "meshkit.status.v1.StatusService/GetSystemStatus"));
    assert.equal(systemStatus.status.services.length, 2);
    const watched = await grpcurl("-plaintext", "-max-time", "2", target(status), "meshkit.status.v1.StatusService/WatchSystemStatus").catch((error: { stdout?: string }) => error.stdout ?? "");
    assert.match(watched, /"services"/);
  });

  it("is plain gRPC on the wire: a @grpc/grpc-js client built from the .proto files calls it", async () => {
    const definition = protoLoader.loadSync(path.join(projectRoot, "proto/meshkit/orders/v1/orders.proto"), {
      includeDirs: [path.join(projectRoot, "proto"), path.join(projectRoot, ".tools/proto")],
      keepCase: true,
      longs: String,
      enums: String,
    });
    const loaded = grpc.loadPackageDefinition(definition) as unknown as { meshkit: { orders: { v1: { OrderService: grpc.ServiceClientConstructor } } } };
    const client = new loaded.meshkit.orders.v1.OrderService(target(orders), grpc.credentials.createInsecure());
    const call = (method: string, request: object) =>
      new Promise<Record<string, unknown>>((resolve, reject) => (client[method] as (r: object, cb: (e: Error | null, v: Record<string, unknown>) => void) => void).call(client, request, (error, value) => (error ? reject(error) : resolve(value))));
    const created = (await call("createOrder", { idempotency_key: `grpcjs-${run}`, user_id: "u2", product: "ink", quantity: 1, amount_cents: 99 })) as { order: { id: string; status: string } };
    assert.equal(created.order.status, "ORDER_STATUS_PENDING");
    const fetched = (await call("getOrder", { id: created.order.id })) as { order: { product: string } };
    assert.equal(fetched.order.product, "ink");
    client.close();
  });

  it("answers the Connect protocol with JSON over HTTP/1.1", async () => {
    const response = await fetch(`http://${target(orders)}/meshkit.orders.v1.OrderService/CreateOrder`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ idempotencyKey: `connect-${run}`, userId: "u3", product: "cup", quantity: 2, amountCents: "10" }),
    });
    assert.equal(response.status, 200);
    const body = (await response.json()) as { order: { product: string }; created: boolean };
    assert.deepEqual([body.order.product, body.created], ["cup", true]);
  });

  it("refuses invalid requests with INVALID_ARGUMENT naming each field, and writes nothing", async () => {
    const key = `bad-${run}`;
    const error = await ordersClient()
      .createOrder({ idempotencyKey: key, userId: "", product: "x", quantity: 0 })
      .then(() => undefined, (e: unknown) => ConnectError.from(e));
    assert.equal(error?.code, Code.InvalidArgument);
    const [violations] = error!.findDetails(ViolationsSchema);
    assert.ok(violations, "no buf.validate.Violations detail");
    const fields = violations.violations.map((v) => v.field?.elements.map((e) => e.fieldName).join("."));
    assert.deepEqual(fields.sort(), ["quantity", "user_id"]);
    const { rows } = await db.query("SELECT count(*)::int AS n FROM orders WHERE idempotency_key = $1", [key]);
    assert.equal(rows[0].n, 0);
    const badId = await ordersClient().getOrder({ id: "not-a-uuid" }).catch((e: unknown) => ConnectError.from(e));
    assert.equal((badId as ConnectError).code, Code.InvalidArgument);
  });

  it("creates one order for a retried create with the same idempotency key", async () => {
    const key = `same-${run}`;
    const request = { idempotencyKey: key, userId: "u4", product: "lamp", quantity: 1, amountCents: 2500n };
    const first = await ordersClient().createOrder(request);
    const second = await ordersClient().createOrder(request);
    assert.deepEqual([first.created, second.created, second.order?.id], [true, false, first.order?.id]);
    const { rows } = await db.query("SELECT count(*)::int AS n FROM orders WHERE idempotency_key = $1", [key]);
    assert.equal(rows[0].n, 1);
    const clash = await ordersClient().createOrder({ ...request, quantity: 2 }).catch((e: unknown) => ConnectError.from(e));
    assert.equal((clash as ConnectError).code, Code.AlreadyExists);
    await eventually("the order in the read model", async () => ((await redis.hget(`order:${first.order!.id}`, "json")) ? true : undefined));
    const { order } = await ordersClient().getOrder({ id: first.order!.id });
    assert.equal(order?.status, OrderStatus.PENDING);
  });

  it(`syncs ${userCount} users from an HTTP source into PostgreSQL and the Redis read model`, async () => {
    const client = createClient(UserSyncService, createGrpcTransport({ baseUrl: `http://${target(users)}` }));
    const started = performance.now();
    const result = await client.syncUsers({}, { timeoutMs: 240_000 });
    assert.deepEqual({ synced: result.synced, failed: result.failed }, { synced: userCount, failed: 0 });
    const { rows } = await db.query("SELECT count(*)::int AS n FROM users WHERE third_party_id LIKE $1", [`${prefix}%`]);
    assert.equal(rows[0].n, userCount + 1); // + the one imported through grpcurl
    await eventually(
      "every synced user in the read model",
      async () => ((await redis.zlexcount("users:index", `[${prefix}0`, `[${prefix}9999999`)) === userCount ? true : undefined),
      { timeoutMs: 120_000, intervalMs: 500 },
    );
    const sampleId = `${prefix}${String(Math.min(12_345, userCount - 1)).padStart(7, "0")}`;
    const sample = JSON.parse((await redis.hget(`user:${sampleId}`, "json")) ?? "{}");
    assert.equal(sample.email, `${sampleId}@example.com`);
    console.log(`      synced ${userCount} users in ${Math.round(performance.now() - started)} ms (PostgreSQL and read model)`);
  });

  it("reports system status through the mesh, traced across services", async () => {
    const transport = createMeshTransport({ service: names.status, consul, metrics: new Registry() });
    try {
      const client = createClient(StatusService, transport);
      const { status: systemStatus } = await client.getSystemStatus({});
      assert.deepEqual(systemStatus!.services.map((s) => [s.name, s.reachable, s.passingInstances >= 1]), [[names.users, true, true], [names.orders, true, true]]);
      // Exactly what this suite wrote into its own stores: the synced users and the one imported
      // through grpcurl; the orders made through grpcurl, grpc-js, Connect and the idempotent
      // create (the invalid one wrote nothing); the one user the grpcurl import refused.
      const expected = { totalUsers: BigInt(userCount + 1), totalOrders: 4n, failedTasks: 1n };
      const totals = (status: typeof systemStatus) => ({ totalUsers: status!.totalUsers, totalOrders: status!.totalOrders, failedTasks: status!.failedTasks });
      const settled = await eventually(
        "the status totals to settle",
        async () => {
          const current = totals((await client.getSystemStatus({})).status);
          return JSON.stringify(current, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v)) === JSON.stringify(expected, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v)) ? current : undefined;
        },
        { timeoutMs: 30_000, intervalMs: 500 },
      ).catch(async () => totals((await client.getSystemStatus({})).status));
      assert.deepEqual(settled, expected);
    } finally {
      transport.close();
    }
    // Each process exports its spans in its own batches, so the trace is complete only once both
    // services' spans have arrived: wait for one status trace that reaches both.
    const reaches = (t: { processes: Record<string, { serviceName: string }> }, service: string) => Object.values(t.processes).some((p) => p.serviceName === service);
    await eventually("a status trace reaching user-sync and orders in Jaeger", async () => {
      const response = await fetch(`${jaegerQueryUrl}/api/traces?service=${names.status}&operation=${encodeURIComponent("meshkit.status.v1.StatusService/GetSystemStatus")}&limit=5`);
      const body = (await response.json()) as { data: { processes: Record<string, { serviceName: string }> }[] };
      return body.data.find((t) => reaches(t, names.users) && reaches(t, names.orders));
    });
  });
});

describe("reference services: nothing lost when Redis or an instance fails", function () {
  this.timeout(120_000);
  const run = randomUUID().slice(0, 8);
  const service = `orders-faults-${run}`;
  // Processes that use neither the private Redis nor the database (the echo of the drain test).
  const processes: ServiceProcess[] = [];
  // Whole-table counts (every order, every pending one) need a database no other suite writes.
  let stack: PrivateStack;
  let privateRedis: PrivateRedis;
  let db: PrivateDatabase["pool"];

  before(async () => {
    stack = await startPrivateStack("faults");
    privateRedis = stack.redis;
    db = stack.database.pool;
  });
  after(async () => {
    await Promise.all(processes.map(killProcess));
    await stack?.close();
  });

  it("keeps taking orders while Redis is down, and the read model holds each, once, when it returns", async () => {
    // Published outbox rows are pruned at once here, so the rebuild below cannot be a replay of
    // the outbox: it has to come from a snapshot of the orders table.
    const instance = await stack.start("src/reference/services/orders/main.ts", {
      SERVICE_NAME: service,
      CONSUL_CHECK_INTERVAL: "1s",
      EVENTS_TRIM_INTERVAL_MS: "500",
      OUTBOX_RETENTION_MS: "1",
      OUTBOX_PRUNE_INTERVAL_MS: "300",
    });
    const client = createClient(OrderService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${instance.port}` }));
    const ids: string[] = [];
    const create = async (n: number) => ids.push((await client.createOrder({ idempotencyKey: `redis-${run}-${n}`, userId: "u", product: "p", quantity: 1, amountCents: 1n })).order!.id);
    for (let n = 0; n < 10; n++) await create(n);
    await eventually("the published order events to be pruned", async () => {
      const { rows } = await db.query("SELECT count(*)::int AS n FROM outbox WHERE stream = 'events:orders' AND published_at IS NOT NULL");
      return rows[0].n === 0 ? true : undefined;
    });
    await privateRedis.stop(); // and it comes back empty: nothing kept on disk
    for (let n = 10; n < 30; n++) await create(n);
    await client.processOrders({ limit: 5 });
    // The backlog is visible at /metrics while Redis is away (what alert OutboxBacklog watches).
    const backlog = async () => {
      const text = await (await fetch(`http://127.0.0.1:${instance.port}/metrics`)).text();
      const value = (name: string) => Number(new RegExp(`^${name}\\{stream="events:orders"\\} (\\S+)$`, "m").exec(text)?.[1] ?? NaN);
      return { events: value("meshkit_outbox_unpublished_events"), age: value("meshkit_outbox_oldest_unpublished_age_seconds") };
    };
    // The gauges reuse one read for a second (outbox-metrics.ts), and anything scraping this
    // instance (a Prometheus discovering it in Consul) may have taken that read mid-way through
    // the creates: wait for a fresh one rather than trusting the first.
    let waiting = await backlog();
    await eventually(`a backlog of at least 25 events while Redis is down (first read: ${JSON.stringify(waiting)})`, async () => {
      waiting = await backlog();
      return waiting.events >= 25 && waiting.age > 0 ? true : undefined;
    }, { timeoutMs: 5_000 });
    await privateRedis.start();
    await eventually(
      "all 30 orders in the rebuilt read model",
      async () => {
        const present = await Promise.all(ids.map((id) => privateRedis.client.hexists(`order:${id}`, "json")));
        return present.every(Boolean) ? true : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 250 },
    );
    // Every order in PostgreSQL counted once, though Redis lost everything and the outbox no
    // longer held the events: the relay published a snapshot of the whole orders table.
    const { rows } = await db.query("SELECT count(*)::int AS n FROM orders");
    await eventually("the order count to settle", async () => (Number(await privateRedis.client.get("stats:total_orders")) === rows[0].n ? true : undefined), { timeoutMs: 60_000 });
    // And each order's newest state: the read model says what PostgreSQL says.
    const truth = await db.query<{ id: string; status: string }>("SELECT id::text, status FROM orders WHERE id = ANY($1::uuid[])", [ids]);
    const expected = Object.fromEntries(truth.rows.map((row) => [row.id, row.status]));
    await eventually("the read model to match PostgreSQL", async () => {
      const jsons = await Promise.all(ids.map((id) => privateRedis.client.hget(`order:${id}`, "json")));
      const seen = Object.fromEntries(ids.map((id, i) => [id, JSON.parse(jsons[i]!).status as string]));
      return JSON.stringify(seen) === JSON.stringify(Object.fromEntries(ids.map((id) => [id, expected[id]]))) ? true : undefined;
    });
    // Once projected, the snapshot's events leave the stream: it keeps only the last one the
    // group was given, not every event published.
    await eventually("the consumed stream to be trimmed", async () => ((await privateRedis.client.xlen("events:orders")) <= 1 ? true : undefined));
    await eventually("the backlog to drain", async () => ((await backlog()).events === 0 ? true : undefined));
  });

  it("loses no acknowledged order when an instance is SIGKILLed under load", async () => {
    const env = { SERVICE_NAME: `${service}-kill`, CONSUL_CHECK_INTERVAL: "1s" };
    const pair = await Promise.all([1, 2].map(() => stack.start("src/reference/services/orders/main.ts", env)));
    const transport = createMeshTransport({ service: env.SERVICE_NAME, consul, metrics: new Registry(), balancer: "round_robin" });
    const client = createClient(OrderService, transport);
    await eventually("both instances known", async () => (transport.endpoints.length === 2 ? true : undefined));
    const acknowledged: string[] = [];
    let n = 0;
    setTimeout(() => pair[0]!.signal("SIGKILL"), 800);
    const result = await runLoad(
      async () => acknowledged.push((await client.createOrder({ idempotencyKey: `kill-${run}-${n++}`, userId: "u", product: "p", quantity: 1, amountCents: 1n })).order!.id),
      { durationMs: 3000, concurrency: 4, maxCalls: 5000 },
    );
    transport.close();
    assert.deepEqual(result.errors.map(String), []);
    const { rows } = await db.query("SELECT count(*)::int AS n FROM orders WHERE id = ANY($1::uuid[])", [acknowledged]);
    assert.equal(rows[0].n, acknowledged.length);
    assert.ok(acknowledged.length > 50, `only ${acknowledged.length} orders`);
  });

  it("applies no ProcessOrders twice and loses none it acknowledged when an instance is SIGKILLed under load", async () => {
    // ProcessOrders has side effects: the mesh client may not send it again once it left, so a
    // kill cannot be hidden by retries as it is for the idempotent CreateOrder above.
    const env = { SERVICE_NAME: `${service}-kill-process`, CONSUL_CHECK_INTERVAL: "1s" };
    const pair = await Promise.all([1, 2].map(() => stack.start("src/reference/services/orders/main.ts", env)));
    await db.query(`INSERT INTO orders (idempotency_key, user_id, product, quantity, amount_cents) SELECT 'kill-process-${run}-' || g, 'u', 'p', 1, 1 FROM generate_series(1, 5000) g`);
    const processedSoFar = async () => (await db.query("SELECT count(*)::int AS n FROM orders WHERE status = 'PROCESSED'")).rows[0].n as number;
    const before = await processedSoFar();
    const transport = createMeshTransport({ service: env.SERVICE_NAME, consul, metrics: new Registry(), balancer: "round_robin" });
    const client = createClient(OrderService, transport);
    await eventually("both instances known", async () => (transport.endpoints.length === 2 ? true : undefined));
    const limit = 3;
    let acknowledged = 0;
    setTimeout(() => pair[0]!.signal("SIGKILL"), 800);
    const result = await runLoad(
      async () => {
        // Not `acknowledged += await ...`, which reads the sum before the await and loses the
        // answers of the calls that finish meanwhile.
        const { processed } = await client.processOrders({ limit });
        acknowledged += processed;
      },
      { durationMs: 3000, concurrency: 4, maxCalls: 1500 },
    );
    transport.close();
    const processed = (await processedSoFar()) - before;
    // Every processing a caller was told of happened, once: an order is PROCESSED at version 2.
    assert.ok(processed >= acknowledged, `${acknowledged} acknowledged, ${processed} processed`);
    const { rows: twice } = await db.query("SELECT count(*)::int AS n FROM orders WHERE status = 'PROCESSED' AND version <> 2");
    assert.equal(twice[0].n, 0, "orders processed more than once");
    // Work nobody was told of comes only from calls that failed (their answer died with the
    // instance): a call sent again behind the caller's back would show as more work than that.
    assert.ok(processed - acknowledged <= limit * result.errors.length, `${processed - acknowledged} unacknowledged with ${result.errors.length} failed calls`);
    // Only the calls in flight on the killed instance may fail, and only as an unavailable instance does.
    assert.ok(result.errors.length <= 4, `${result.errors.length} failed calls: ${result.errors.map(String).join("; ")}`);
    for (const error of result.errors) assert.equal(ConnectError.from(error).code, Code.Unavailable, String(error));
    assert.ok(result.calls - result.errors.length > 50, `only ${result.calls - result.errors.length} calls answered`);
    console.log(`      ${result.calls} ProcessOrders calls, ${result.errors.length} failed (UNAVAILABLE); ${acknowledged} orders acknowledged, ${processed} processed`);
  });

  it("rebuilds the read model of every service sharing Redis when it comes back empty", async () => {
    const env = { CONSUL_CHECK_INTERVAL: "1s" };
    const [ordersInstance, usersInstance] = await Promise.all([
      stack.start("src/reference/services/orders/main.ts", { ...env, SERVICE_NAME: `${service}-shared` }),
      stack.start("src/reference/services/users/main.ts", { ...env, SERVICE_NAME: `user-sync-faults-${run}`, SYNC_INTERVAL_MS: "0" }),
    ]);
    const order = (await createClient(OrderService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${ordersInstance.port}` })).createOrder({ idempotencyKey: `shared-${run}`, userId: "u", product: "p", quantity: 1, amountCents: 1n })).order!;
    const users = createClient(UserSyncService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${usersInstance.port}` }));
    const userId = `shared-${run}`;
    await users.importUsers((async function* () {
      yield { user: { thirdPartyId: userId, email: "shared@example.com" } };
    })());
    const bothProjected = async () =>
      (await privateRedis.client.hexists(`order:${order.id}`, "json")) && (await privateRedis.client.hexists(`user:${userId}`, "json")) ? true : undefined;
    await eventually("the order and the user in the read model", bothProjected);
    await privateRedis.stop(); // it comes back empty
    await privateRedis.start();
    await eventually("both read models rebuilt, not only the first relay's", bothProjected, { timeoutMs: 60_000, intervalMs: 250 });
  });

  it("drains on SIGTERM: every call in flight succeeds and the instance leaves Consul", async () => {
    const slow = await startServiceProcess("src/reference/services/echo/main.ts", { SERVICE_NAME: `echo-drain-${run}`, ECHO_DELAY_MS: "700" });
    processes.push(slow);
    const { EchoService } = await import("../../gen/meshkit/echo/v1/echo_pb.js");
    const client = createClient(EchoService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${slow.port}` }));
    const inFlight = Array.from({ length: 8 }, (_, i) => client.echo({ message: `in flight ${i}` }));
    await new Promise((resolve) => setTimeout(resolve, 200));
    slow.signal("SIGTERM");
    const replies = await Promise.all(inFlight);
    assert.equal(replies.length, 8);
    assert.equal(await slow.exited, 0);
    assert.equal(((await consul.agent.service.list()) as Record<string, unknown>)[slow.instanceId], undefined);
  });
});
