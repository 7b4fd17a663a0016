import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import { create } from "@bufbuild/protobuf";
import { GetOrderRequestSchema, GetOrderResponseSchema, OrderService } from "../../gen/meshkit/orders/v1/orders_pb.js";
import { peakEwmaPolicyName, recommendedServiceConfig } from "../../src/grpc-js/index.js";
import { codec, startGrpcJsServer, unaryMethod } from "../support/grpc-js-server.js";

const getOrderPath = `/${OrderService.typeName}/GetOrder`;

/** A grpc-js server answering GetOrder after `delayMs`, counting the calls it served. */
async function startServer(delayMs: number): Promise<{ port: number; served: () => number; stop: () => void }> {
  let served = 0;
  const server = await startGrpcJsServer([
    unaryMethod(OrderService.method.getOrder, (_call, callback) => {
      served++;
      setTimeout(() => callback(null, create(GetOrderResponseSchema, {})), delayMs);
    }),
  ]);
  return { ...server, served: () => served };
}

/** The fast server's share of `calls` GetOrder calls, 4 in flight, on a channel with `serviceConfig`. */
async function fastShare(serviceConfig: object, calls: number): Promise<number> {
  const [fast, slow] = await Promise.all([startServer(0), startServer(30)]);
  const client = new grpc.Client(`ipv4:127.0.0.1:${fast.port},127.0.0.1:${slow.port}`, grpc.credentials.createInsecure(), {
    "grpc.service_config": JSON.stringify(serviceConfig),
  });
  const { serialize } = codec(GetOrderRequestSchema);
  const { deserialize } = codec(GetOrderResponseSchema);
  try {
    let left = calls;
    const worker = async () => {
      while (left-- > 0) {
        await new Promise((resolve, reject) =>
          client.makeUnaryRequest(getOrderPath, serialize, deserialize, create(GetOrderRequestSchema, { id: "x" }), { deadline: Date.now() + 5_000 }, (error, value) =>
            error ? reject(error) : resolve(value),
          ),
        );
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
    return fast.served() / (fast.served() + slow.served());
  } finally {
    client.close();
    fast.stop();
    slow.stop();
  }
}

describe("meshkit/grpc-js: the meshkit_peak_ewma policy", function () {
  this.timeout(60_000);

  it("sends most calls to the faster of two instances, where round_robin splits them evenly", async () => {
    const roundRobin = await fastShare(recommendedServiceConfig({ services: [OrderService] }), 300);
    const peakEwma = await fastShare(recommendedServiceConfig({ services: [OrderService], balancer: peakEwmaPolicyName }), 300);
    assert.ok(roundRobin > 0.4 && roundRobin < 0.6, `round_robin gave the fast instance ${roundRobin.toFixed(2)} of the calls`);
    assert.ok(peakEwma > 0.75, `meshkit_peak_ewma gave the fast instance only ${peakEwma.toFixed(2)} of the calls`);
  });

  it("is what grpc-js parses the config into (an unregistered policy would fall back to pick_first silently)", () => {
    const [lb] = recommendedServiceConfig({ balancer: peakEwmaPolicyName }).loadBalancingConfig;
    const parsed = grpc.experimental.parseLoadBalancingConfig(lb!).toJsonObject() as { outlier_detection: { child_policy: object[] } };
    assert.deepEqual(parsed.outlier_detection.child_policy, [{ [peakEwmaPolicyName]: {} }]);
  });
});
