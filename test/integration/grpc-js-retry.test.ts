import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import { create, type DescMessage, type DescMethodUnary, type MessageShape } from "@bufbuild/protobuf";
import {
  GetOrderRequestSchema,
  GetOrderResponseSchema,
  OrderService,
  ProcessOrdersRequestSchema,
  ProcessOrdersResponseSchema,
} from "../../gen/meshkit/orders/v1/orders_pb.js";
import { recommendedClientOptions, recommendedServiceConfig } from "../../src/grpc-js/index.js";
import { codec, startGrpcJsServer, unaryMethod } from "../support/grpc-js-server.js";

function unary<I extends DescMessage, O extends DescMessage>(client: grpc.Client, path: string, input: I, output: O, deadlineMs = 2_000): Promise<MessageShape<O>> {
  return new Promise((resolve, reject) =>
    client.makeUnaryRequest(path, codec(input).serialize, codec(output).deserialize, create(input), new grpc.Metadata(), { deadline: Date.now() + deadlineMs }, (error, response) =>
      error ? reject(error) : resolve(response!),
    ),
  );
}

const getOrderPath = `/${OrderService.typeName}/GetOrder`;
const processOrdersPath = `/${OrderService.typeName}/ProcessOrders`;

/**
 * A grpc-js server whose methods fail the way a dying instance does after it has answered with
 * headers: response headers sent, then UNAVAILABLE. Such a call is committed for grpc-js's
 * retryPolicy (gRFC A6), which is the case the interceptor is for.
 */
async function startFlakyServer(failuresPerMethod: number): Promise<{ port: number; calls: Map<string, number>; stop: () => void }> {
  const calls = new Map<string, number>();
  const flaky = <I extends DescMessage, O extends DescMessage>(method: DescMethodUnary<I, O>, respond: () => MessageShape<O>) =>
    unaryMethod(method, (call, callback) => {
      const path = `/${method.parent.typeName}/${method.name}`;
      const count = (calls.get(path) ?? 0) + 1;
      calls.set(path, count);
      call.sendMetadata(new grpc.Metadata());
      if (count <= failuresPerMethod) callback({ code: grpc.status.UNAVAILABLE, details: "instance going away" });
      else callback(null, respond());
    });
  const server = await startGrpcJsServer([
    flaky(OrderService.method.getOrder, () => create(GetOrderResponseSchema, {})),
    flaky(OrderService.method.processOrders, () => create(ProcessOrdersResponseSchema, { processed: 1 })),
  ]);
  return { ...server, calls };
}

describe("meshkit/grpc-js: retries after the response headers arrived", () => {
  let server: Awaited<ReturnType<typeof startFlakyServer>>;
  const clients: grpc.Client[] = [];
  const client = (options: grpc.ClientOptions) => {
    const created = new grpc.Client(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure(), options);
    clients.push(created);
    return created;
  };

  beforeEach(async () => (server = await startFlakyServer(1)));
  afterEach(() => {
    for (const created of clients.splice(0)) created.close();
    server.stop();
  });

  it("the service config alone does not retry such a call (grpc-js commits it at the headers)", async () => {
    const plain = client({ "grpc.service_config": JSON.stringify(recommendedServiceConfig({ services: [OrderService] })) });
    await assert.rejects(unary(plain, getOrderPath, GetOrderRequestSchema, GetOrderResponseSchema), { code: grpc.status.UNAVAILABLE });
    assert.equal(server.calls.get(getOrderPath), 1);
  });

  it("recommendedClientOptions retries it for an idempotent method, and the caller sees only the answer", async () => {
    const recommended = client(recommendedClientOptions({ services: [OrderService] }));
    await unary(recommended, getOrderPath, GetOrderRequestSchema, GetOrderResponseSchema);
    assert.equal(server.calls.get(getOrderPath), 2);
  });

  it("never repeats a method with side effects", async () => {
    const recommended = client(recommendedClientOptions({ services: [OrderService] }));
    await assert.rejects(unary(recommended, processOrdersPath, ProcessOrdersRequestSchema, ProcessOrdersResponseSchema), { code: grpc.status.UNAVAILABLE });
    assert.equal(server.calls.get(processOrdersPath), 1);
  });

  it("stops at maxAttempts and reports the last failure", async () => {
    server.stop();
    server = await startFlakyServer(10);
    const recommended = client(recommendedClientOptions({ services: [OrderService], maxAttempts: 2 }));
    await assert.rejects(unary(recommended, getOrderPath, GetOrderRequestSchema, GetOrderResponseSchema), { code: grpc.status.UNAVAILABLE });
    // 2 attempts of the interceptor; the channel's policy adds none (each attempt was committed).
    assert.equal(server.calls.get(getOrderPath), 2);
  });
});
