import assert from "node:assert/strict";
import { randomBytes, randomUUID } from "node:crypto";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { CreateOrderRequestSchema } from "../../gen/meshkit/orders/v1/orders_pb.js";
import { eventually, grpcurl } from "../support/infra.js";
import { grpcFrame, rawCall } from "../support/raw-grpc.js";
import { killProcess, startServiceProcess, type ServiceProcess } from "../support/service-process.js";
import { privateDatabase, type PrivateDatabase } from "../support/database.js";
import { startPrivateRedis, type PrivateRedis } from "../support/private-redis.js";
import { readModelEpochKey } from "../../src/reference/events/relay.js";

describe("bad input: every reply a proper gRPC status, no crash, nothing written", function () {
  this.timeout(120_000);
  const run = randomUUID().slice(0, 8);
  let orders: ServiceProcess, users: ServiceProcess, status: ServiceProcess;
  // A database and a Redis of this run's own: whole-table counts in the shared database move with
  // other suites, and in the shared Redis these services would join the other suites' consumer
  // groups, project their events (a big sync's backlog costs seconds of CPU) and write this
  // run's events into the shared read model, where "nothing written" could not be checked.
  let database: PrivateDatabase;
  let redis: PrivateRedis;
  const counts = async () => {
    const { rows } = await database.pool.query("SELECT (SELECT count(*) FROM orders)::int AS orders, (SELECT count(*) FROM users)::int AS users, (SELECT count(*) FROM outbox)::int AS outbox");
    return rows[0] as { orders: number; users: number; outbox: number };
  };

  before(async () => {
    [database, redis] = await Promise.all([privateDatabase("bad_input"), startPrivateRedis()]);
    // Both start empty, and consistent: the read model of an empty database is an empty Redis.
    // Without its epoch key a relay would take the new Redis for one that lost its data and
    // publish a snapshot (events of its own) at some moment during the test.
    for (const stream of ["events:users", "events:orders"]) await redis.client.set(readModelEpochKey([stream]), run);
    const env = { CONSUL_CHECK_INTERVAL: "1s", PGDATABASE: database.name, REDIS_URL: redis.url };
    [orders, users, status] = await Promise.all([
      startServiceProcess("src/reference/services/orders/main.ts", { ...env, SERVICE_NAME: `orders-fuzz-${run}` }),
      startServiceProcess("src/reference/services/users/main.ts", { ...env, SERVICE_NAME: `user-sync-fuzz-${run}`, SYNC_INTERVAL_MS: "0" }),
      startServiceProcess("src/reference/services/status/main.ts", { ...env, SERVICE_NAME: `status-fuzz-${run}`, STATUS_SERVICES: "none" }),
    ]);
  });
  after(async () => {
    await Promise.all([orders, users, status].map(killProcess));
    await database?.drop();
    await redis?.close();
  });

  it("answers malformed protobuf, wrong content types, oversized and invalid messages and unknown methods properly", async () => {
    const before = await counts();
    const targets = [
      { service: orders, method: "/meshkit.orders.v1.OrderService/CreateOrder" },
      { service: orders, method: "/meshkit.orders.v1.OrderService/GetOrder" },
      { service: users, method: "/meshkit.users.v1.UserSyncService/ImportUsers" },
      { service: users, method: "/meshkit.users.v1.UserSyncService/GetUser" },
      { service: status, method: "/meshkit.status.v1.StatusService/GetSystemStatus" },
    ];
    const seen = new Map<string, number>();
    // An import stream that decodes (random bytes can) answers OK with its user counted as
    // failed, and records that run: one users.sync_completed event each, and nothing else.
    let importsAnswered = 0;
    const note = (what: string, status: number | undefined) => seen.set(`${what} -> ${status}`, (seen.get(`${what} -> ${status}`) ?? 0) + 1);

    for (const { service, method } of targets) {
      // 1. Malformed protobuf: 50 random payloads each. A random payload may by chance parse as
      //    valid protobuf; then validation or the handler answers. Never a crash, never an HTTP error.
      for (let i = 0; i < 50; i++) {
        const answer = await rawCall(service.port, method, grpcFrame(randomBytes(1 + (i % 40))));
        assert.equal(answer.httpStatus, 200, `${method}: HTTP ${answer.httpStatus}`);
        assert.ok(answer.grpcStatus !== undefined, `${method}: no grpc-status`);
        assert.notEqual(answer.grpcStatus, Code.Unknown, `${method}: UNKNOWN for malformed input: ${answer.grpcMessage}`);
        // connect-node, like grpc-go, answers a request it cannot decode with INTERNAL ("parse
        // binary: ..."), before any interceptor runs, as gRPC's status code table prescribes
        // ("Error parsing request proto: INTERNAL", grpc/doc/statuscodes.md); anything else
        // INTERNAL would be our bug.
        if (answer.grpcStatus === Code.Internal) assert.match(answer.grpcMessage, /^parse binary/, `${method}: ${answer.grpcMessage}`);
        note("random bytes", answer.grpcStatus);
        if (answer.grpcStatus === 0 && method.endsWith("/ImportUsers")) importsAnswered++;
      }
      // 2. A frame that declares more bytes than it carries.
      const truncated = await rawCall(service.port, method, grpcFrame(Buffer.from([8, 1]), 1000));
      assert.ok(truncated.grpcStatus !== undefined && truncated.grpcStatus !== 0, `${method}: truncated frame accepted`);
      note("truncated frame", truncated.grpcStatus);
      // 3. Wrong content type: refused as unsupported (HTTP 415), not processed.
      const wrongType = await rawCall(service.port, method, Buffer.from("hello"), "text/plain");
      assert.equal(wrongType.httpStatus, 415, `${method}: text/plain got HTTP ${wrongType.httpStatus}`);
      // 4. Oversized: 5 MiB against a 4 MiB limit.
      const oversized = await rawCall(service.port, method, grpcFrame(Buffer.alloc(5 * 1024 * 1024, 1)));
      assert.equal(oversized.grpcStatus, Code.ResourceExhausted, `${method}: oversized got ${oversized.grpcStatus} ${oversized.grpcMessage}`);
    }

    // 5. Invalid field values, well-formed: INVALID_ARGUMENT (or counted as failed in a stream).
    const invalidOrder = toBinary(CreateOrderRequestSchema, create(CreateOrderRequestSchema, { idempotencyKey: "x", userId: "", product: "", quantity: 0, amountCents: -5n }));
    assert.equal((await rawCall(orders.port, "/meshkit.orders.v1.OrderService/CreateOrder", grpcFrame(invalidOrder))).grpcStatus, Code.InvalidArgument);
    const imported = await grpcurl("-plaintext", "-d", `{"user":{"thirdPartyId":"","email":"nope"}}`, `127.0.0.1:${users.port}`, "meshkit.users.v1.UserSyncService/ImportUsers");
    assert.deepEqual(JSON.parse(imported), { failed: 1 });

    // 6. Unknown methods and services: HTTP 200 and UNIMPLEMENTED, naming what is missing, as
    //    grpc-go answers (not a bare HTTP 404).
    for (const [path, message] of [
      ["/meshkit.orders.v1.OrderService/DeleteEverything", "unknown method DeleteEverything for service meshkit.orders.v1.OrderService"],
      ["/no.such.v1.Service/Method", "unknown service no.such.v1.Service"],
    ] as const) {
      const answer = await rawCall(orders.port, path, grpcFrame(Buffer.alloc(0)));
      assert.deepEqual(answer, { httpStatus: 200, grpcStatus: Code.Unimplemented, grpcMessage: message }, path);
    }

    // Nobody crashed, and nothing was written: no order, no user, and no event but the sync-run
    // records of the imports that answered OK (the grpcurl one above and any random payload that
    // decoded), each with 0 synced.
    for (const service of [orders, users, status]) {
      assert.equal(service.child.exitCode, null, "a service process died");
      assert.deepEqual(JSON.parse(await grpcurl("-plaintext", `127.0.0.1:${service.port}`, "grpc.health.v1.Health/Check")), { status: "SERVING" });
    }
    const after = await counts();
    assert.deepEqual({ orders: after.orders, users: after.users }, { orders: before.orders, users: before.users });
    assert.equal(after.outbox - before.outbox, importsAnswered + 1, `outbox grew by ${after.outbox - before.outbox}; ${importsAnswered} + 1 imports answered`);
    const { rows } = await database.pool.query("SELECT event_type, (payload->>'synced')::int AS synced, count(*)::int AS n FROM outbox GROUP BY 1, 2");
    assert.deepEqual(rows, [{ event_type: "users.sync_completed", synced: 0, n: importsAnswered + 1 }]);
    // Nor in the read model: once the projection has applied the last sync-run record (its
    // failure total has arrived), Redis holds no user and no order.
    const { rows: counters } = await database.pool.query<{ value: string }>("SELECT value::text FROM counters WHERE name = 'user_sync_failed'");
    await eventually("the sync-run records projected", async () => ((await redis.client.get("stats:failed_tasks")) === counters[0]?.value ? true : undefined));
    assert.deepEqual(await redis.client.keys("user:*"), []);
    assert.deepEqual(await redis.client.keys("order:*"), []);
    assert.equal(await redis.client.zcard("users:index"), 0);
    console.log(`      statuses seen: ${[...seen].map(([k, v]) => `${k} (${v})`).join(", ")}`);
  });
});
