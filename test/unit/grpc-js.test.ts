import assert from "node:assert/strict";
import { createRequire } from "node:module";
import * as grpc from "@grpc/grpc-js";
import { OrderService } from "../../gen/meshkit/orders/v1/orders_pb.js";
import { checkGrpcJsVersion } from "../../src/grpc-js/grpc-js-version.js";
import { ConsulTargetError, parseConsulTarget } from "../../src/grpc-js/consul-target.js";
import { recommendedClientOptions, recommendedServiceConfig } from "../../src/grpc-js/service-config.js";
import { registerConsulResolver } from "../../src/grpc-js/register.js";
import { MeshAddressBook } from "../../src/grpc-js/mesh-address-book.js";

describe("consul: targets", () => {
  it("reads consul:///<service> as the default agent's service", () => {
    assert.deepEqual(parseConsulTarget("", "orders"), { agent: undefined, service: "orders", tags: [], dc: undefined, near: undefined, mesh: false });
  });

  it("reads the agent, repeated tags, dc, near and mesh", () => {
    assert.deepEqual(parseConsulTarget("127.0.0.1:8501", "orders-v2?tag=grpc&tag=blue&dc=eu1&near=_agent&mesh=true"), {
      agent: { host: "127.0.0.1", port: 8501 },
      service: "orders-v2",
      tags: ["grpc", "blue"],
      dc: "eu1",
      near: "_agent",
      mesh: true,
    });
    assert.deepEqual(parseConsulTarget("[::1]:8500", "orders").agent, { host: "::1", port: 8500 });
  });

  it("refuses malformed targets with a message naming the problem", () => {
    const cases: [string | undefined, string, RegExp][] = [
      ["", "", /no service name/],
      ["", "?tag=x", /no service name/],
      ["", "bad name", /not a Consul service name/],
      ["consul.local", "orders", /is not host:port/],
      ["127.0.0.1:99999", "orders", /is not host:port/],
      ["", "orders?color=blue", /unknown parameter "color"/],
      ["", "orders?dc=a&dc=b", /"dc" given 2 times/],
      ["", "orders?tag=", /an empty tag/],
      ["", "orders?mesh=yes", /"mesh" is true or false/],
    ];
    for (const [authority, path, message] of cases) {
      assert.throws(() => parseConsulTarget(authority, path), (error: unknown) => error instanceof ConsulTargetError && message.test(error.message), `${authority}/${path}`);
    }
  });
});

describe("registerConsulResolver", () => {
  it("makes grpc-js refuse a malformed consul: target when the client is created, with the reason", () => {
    registerConsulResolver({ consul: { host: "127.0.0.1", port: 1 } });
    assert.throws(() => new grpc.Client("consul:///bad name", grpc.credentials.createInsecure()), /"bad name" is not a Consul service name/);
    assert.throws(() => new grpc.Client("consul://nohost/orders", grpc.credentials.createInsecure()), /"nohost" is not host:port/);
    // A well-formed target makes a client; nothing is asked of Consul until a call needs it.
    new grpc.Client("consul:///orders", grpc.credentials.createInsecure()).close();
  });
});

describe("grpc-js version check", () => {
  it("accepts the tested range and the installed version", () => {
    for (const version of ["1.14.7", "1.14.99"]) checkGrpcJsVersion(version);
    checkGrpcJsVersion((createRequire(import.meta.url)("@grpc/grpc-js/package.json") as { version: string }).version);
  });

  it("refuses other versions, naming the supported range", () => {
    for (const version of ["1.14.6", "1.15.0", "2.0.0", "1.14.7-rc.1", undefined]) {
      assert.throws(() => checkGrpcJsVersion(version), /@grpc\/grpc-js ~1\.14\.7/, String(version));
    }
  });
});

describe("recommended service config", () => {
  it("retries only the methods the proto marks idempotent, on the codes the mesh client retries", () => {
    const config = recommendedServiceConfig({ services: [OrderService] });
    assert.equal(config.methodConfig.length, 1);
    const [methods] = config.methodConfig;
    assert.deepEqual(
      methods!.name.map((name) => name.method).sort(),
      ["CreateOrder", "GetOrder"], // ProcessOrders has side effects and no idempotency option
    );
    assert.ok(methods!.name.every((name) => name.service === "meshkit.orders.v1.OrderService"));
    assert.deepEqual(methods!.retryPolicy!.retryableStatusCodes, ["UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED"]);
    assert.equal(methods!.retryPolicy!.maxAttempts, 3);
    assert.deepEqual(config.retryThrottling, { maxTokens: 20, tokenRatio: 0.2 });
    assert.deepEqual(recommendedServiceConfig().methodConfig, []);
    assert.throws(() => recommendedServiceConfig({ maxAttempts: 6 }), /from 2 to 5/);
  });

  it("is a load-balancing config grpc-js parses as outlier_detection over round_robin (it falls back to pick_first silently otherwise)", () => {
    const [lb] = recommendedServiceConfig().loadBalancingConfig;
    const parsed = grpc.experimental.parseLoadBalancingConfig(lb!);
    assert.equal(parsed.getLoadBalancerName(), "outlier_detection");
    const json = parsed.toJsonObject() as { outlier_detection: { child_policy: Record<string, unknown>[]; failure_percentage_ejection: Record<string, number> } };
    assert.deepEqual(Object.keys(json.outlier_detection.child_policy[0]!), ["round_robin"]);
    assert.equal(json.outlier_detection.failure_percentage_ejection.minimum_hosts, 2);
  });

  it("is accepted by a grpc-js channel, which validates its service config when it is created", () => {
    const client = new grpc.Client("127.0.0.1:1", grpc.credentials.createInsecure(), recommendedClientOptions({ services: [OrderService] }));
    client.close();
    // The same check refuses a broken config: proof that it ran.
    assert.throws(() => new grpc.Client("127.0.0.1:1", grpc.credentials.createInsecure(), { "grpc.service_config": JSON.stringify({ retryThrottling: { maxTokens: 0 } }) }));
  });
});

describe("MeshAddressBook: which service Consul lists at an address a mesh channel resolved", () => {
  it("answers per channel service, from any resolver's current list, and forgets a withdrawn resolver's", () => {
    const book = new MeshAddressBook();
    const addressKey = (host: string, port: number) => grpc.experimental.subchannelAddressToString({ host, port });
    const first = {};
    const second = {};
    book.publish("orders", first, new Map([[addressKey("10.0.0.1", 8443), "orders-v2"]]));
    book.publish("orders", second, new Map([[addressKey("::1", 9443), "orders-dc2"]]));
    assert.equal(book.serviceAt("orders", "10.0.0.1", 8443), "orders-v2");
    assert.equal(book.serviceAt("orders", "::1", 9443), "orders-dc2");
    assert.equal(book.serviceAt("orders", "10.0.0.1", 9443), undefined, "another port");
    assert.equal(book.serviceAt("users", "10.0.0.1", 8443), undefined, "another channel service");
    // A new list replaces the resolver's last one.
    book.publish("orders", first, new Map());
    assert.equal(book.serviceAt("orders", "10.0.0.1", 8443), undefined);
    book.withdraw("orders", second);
    assert.equal(book.serviceAt("orders", "::1", 9443), undefined);
  });
});
