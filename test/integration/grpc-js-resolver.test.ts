import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import {
  CreateOrderRequestSchema,
  CreateOrderResponseSchema,
  GetOrderRequestSchema,
  GetOrderResponseSchema,
  OrderService,
} from "../../gen/meshkit/orders/v1/orders_pb.js";
import { createClient } from "@connectrpc/connect";
import { createMeshTransport } from "../../src/client/index.js";
import { createConsulClient } from "../../src/platform/consul.js";
import { recommendedClientOptions, registerConsulResolver } from "../../src/grpc-js/index.js";
import { consul, consulAddress, eventually } from "../support/infra.js";
import { runLoad } from "../support/load.js";
import { killProcess, startServiceProcess, type ServiceProcess } from "../support/service-process.js";

/** One unary call on a plain grpc-js client, with protobuf-es messages on the wire. */
function unary<I extends DescMessage, O extends DescMessage>(client: grpc.Client, path: string, input: I, output: O, request: MessageShape<I>, deadlineMs: number): Promise<MessageShape<O>> {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(
      path,
      (message: MessageShape<I>) => Buffer.from(toBinary(input, message)),
      (bytes: Buffer) => fromBinary(output, bytes),
      request,
      new grpc.Metadata(),
      { deadline: Date.now() + deadlineMs },
      (error, response) => (error ? reject(error) : resolve(response!)),
    );
  });
}

/** GetOrder calls an instance has served, from its own /metrics (each instance is a process of its own). */
async function getOrderCallsServed(instance: ServiceProcess): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${instance.port}/metrics`, { signal: AbortSignal.timeout(2_000) })).text();
  return text
    .split("\n")
    .filter((line) => line.startsWith("meshkit_server_call_duration_seconds_count{") && line.includes('method="GetOrder"'))
    .reduce((sum, line) => sum + Number(line.split(" ").pop()), 0);
}

async function isPassingInConsul(service: string, instanceId: string): Promise<boolean> {
  const entries = (await consul.health.service({ service, passing: true })) as unknown as { Service: { ID: string } }[];
  return entries.some((entry) => entry.Service.ID === instanceId);
}

describe("meshkit/grpc-js: a plain grpc-js client on a consul:/// target", function () {
  this.timeout(90_000);
  const run = randomUUID().slice(0, 8);
  const service = `orders-grpcjs-${run}`;
  const env = { SERVICE_NAME: service, CONSUL_CHECK_INTERVAL: "1s" };
  const instances: ServiceProcess[] = [];
  let client: grpc.Client;
  let orderId: string;
  const getOrderPath = `/${OrderService.typeName}/${OrderService.method.getOrder.name}`;
  const getOrder = (deadlineMs = 5_000) => unary(client, getOrderPath, GetOrderRequestSchema, GetOrderResponseSchema, create(GetOrderRequestSchema, { id: orderId }), deadlineMs);

  before(async () => {
    registerConsulResolver({ consul: consulAddress });
    instances.push(...(await Promise.all([1, 2].map(() => startServiceProcess("src/reference/services/orders/main.ts", env)))));
    client = new grpc.Client(`consul:///${service}`, grpc.credentials.createInsecure(), recommendedClientOptions({ services: [OrderService] }));
    const created = await eventually("CreateOrder through the consul:/// channel", () =>
      unary(
        client,
        `/${OrderService.typeName}/${OrderService.method.createOrder.name}`,
        CreateOrderRequestSchema,
        CreateOrderResponseSchema,
        create(CreateOrderRequestSchema, { idempotencyKey: `grpcjs-${run}`, userId: `user-${run}`, product: "widget", quantity: 1, amountCents: 100n }),
        5_000,
      ),
    );
    orderId = created.order!.id;
  });

  after(async () => {
    client?.close();
    await Promise.all(instances.map((instance) => killProcess(instance)));
  });

  it("spreads calls over both passing instances (round_robin from the recommended config)", async () => {
    await eventually("both instances to serve GetOrder", async () => {
      await Promise.all(Array.from({ length: 8 }, () => getOrder()));
      const served = await Promise.all(instances.slice(0, 2).map(getOrderCallsServed));
      return served.every((count) => count > 0) ? served : undefined;
    });
  });

  it("shares one blocking-query watch with a mesh transport on the same service and Consul client", async () => {
    // Counts the Consul health queries in flight, seen on the wire by a proxy in front of the
    // agent: a blocking query stays in flight up to 30 s, so two watches on the service would
    // show two at once.
    let inFlight = 0;
    let mostInFlight = 0;
    const proxy = http.createServer((request, response) => {
      const health = request.url?.startsWith(`/v1/health/service/${service}`) ?? false;
      if (health) mostInFlight = Math.max(mostInFlight, ++inFlight);
      const upstream = http.request({ host: consulAddress.host, port: consulAddress.port, method: request.method, path: request.url, headers: request.headers }, (answer) => {
        response.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(response);
      });
      upstream.on("error", () => response.destroy());
      response.on("close", () => {
        if (health) inFlight--;
        upstream.destroy();
      });
      request.pipe(upstream);
    });
    await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
    const shared = createConsulClient({ host: "127.0.0.1", port: (proxy.address() as AddressInfo).port });
    registerConsulResolver({ consul: shared });
    const transport = createMeshTransport({ service, consul: shared });
    const channel = new grpc.Client(`consul:///${service}`, grpc.credentials.createInsecure(), recommendedClientOptions({ services: [OrderService] }));
    try {
      await createClient(OrderService, transport).getOrder({ id: orderId }, { timeoutMs: 5_000 });
      await unary(channel, getOrderPath, GetOrderRequestSchema, GetOrderResponseSchema, create(GetOrderRequestSchema, { id: orderId }), 5_000);
      await sleep(500);
      assert.equal(mostInFlight, 1, "one watch for both");
    } finally {
      channel.close();
      transport.close();
      proxy.closeAllConnections();
      proxy.close();
    }
  });

  it("loses no idempotent call when an instance is SIGKILLed under load", async () => {
    const [victim, survivor] = instances as [ServiceProcess, ServiceProcess];
    const survivorBefore = await getOrderCallsServed(survivor);
    const load = runLoad(() => getOrder(), { durationMs: 5_000, concurrency: 8, maxCalls: 20_000 });
    await sleep(1_500);
    victim.signal("SIGKILL");
    const result = await load;
    const codes = result.errors.map((error) => `${(error as grpc.ServiceError).code}: ${(error as Error).message}`);
    assert.deepEqual(codes.slice(0, 5), [], `${result.errors.length} of ${result.calls} calls failed`);
    assert.ok(result.calls > 100, `only ${result.calls} calls were made`);
    assert.ok((await getOrderCallsServed(survivor)) > survivorBefore, "the survivor served the load");
  });

  it("sends calls to an instance added in Consul within a second of it passing", async () => {
    // Light steady load, so that the moment the new instance gets its first call is visible.
    let loading = true;
    const errors: unknown[] = [];
    const load = (async () => {
      while (loading) {
        await Promise.all(Array.from({ length: 4 }, () => getOrder().catch((error: unknown) => errors.push(error))));
        await sleep(5);
      }
    })();
    try {
      const added = await startServiceProcess("src/reference/services/orders/main.ts", env);
      instances.push(added);
      const passingAt = await eventually("the new instance to pass its check in Consul", async () => ((await isPassingInConsul(service, added.instanceId)) ? performance.now() : undefined), {
        intervalMs: 25,
      });
      const servedAt = await eventually("the new instance to serve a GetOrder", async () => ((await getOrderCallsServed(added)) > 0 ? performance.now() : undefined), {
        timeoutMs: 10_000,
        intervalMs: 25,
      });
      assert.ok(servedAt - passingAt < 1_000, `first call ${Math.round(servedAt - passingAt)} ms after the instance passed in Consul`);
    } finally {
      loading = false;
      await load;
    }
    assert.deepEqual(errors, []);
  });

  it("fails calls fast with UNAVAILABLE when Consul lists no passing instance, as the mesh client does", async () => {
    const nowhere = new grpc.Client(`consul:///orders-none-${run}`, grpc.credentials.createInsecure(), recommendedClientOptions({ services: [OrderService] }));
    try {
      const started = performance.now();
      await assert.rejects(
        unary(nowhere, getOrderPath, GetOrderRequestSchema, GetOrderResponseSchema, create(GetOrderRequestSchema, { id: orderId }), 5_000),
        (error: grpc.ServiceError) => error.code === grpc.status.UNAVAILABLE && /no passing instance of "orders-none-/.test(error.details),
      );
      assert.ok(performance.now() - started < 2_000, "failed fast, not at the 5 s deadline");
    } finally {
      nowhere.close();
    }
  });

  it("drops the instances once none passes any more, and fails fast instead of calling them", async () => {
    // SIGTERM: each instance deregisters from Consul, then drains.
    const running = instances.filter((instance) => instance.child.exitCode === null && instance.child.signalCode === null);
    for (const instance of running) instance.signal("SIGTERM");
    await eventually("no instance passing in Consul", async () => {
      const entries = (await consul.health.service({ service, passing: true })) as unknown[];
      return entries.length === 0 ? true : undefined;
    });
    // The watch hears of the change within its query interval; until then a call may still try
    // an instance that is going away.
    const error = await eventually("a call to fail saying that no instance passes", async () => {
      const started = performance.now();
      const failure = await getOrder(5_000).then(
        () => undefined,
        (caught: grpc.ServiceError) => caught,
      );
      return failure && /no passing instance/.test(failure.details) ? { failure, tookMs: performance.now() - started } : undefined;
    });
    assert.equal(error.failure.code, grpc.status.UNAVAILABLE, error.failure.message);
    assert.match(error.failure.details, /no passing instance/);
    assert.ok(error.tookMs < 2_000, `failed after ${Math.round(error.tookMs)} ms`);
  });
});
