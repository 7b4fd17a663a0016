import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import * as grpc from "@grpc/grpc-js";
import { createClient } from "@connectrpc/connect";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Registry } from "prom-client";
import { EchoRequestSchema, EchoResponseSchema, EchoService } from "../../gen/meshkit/echo/v1/echo_pb.js";
import { createMeshTransport, type MeshTransport } from "../../src/client/index.js";
import { recommendedServiceConfig, registerConsulResolver } from "../../src/grpc-js/index.js";
import { eventually } from "../support/infra.js";
import { consulRequest } from "../support/mesh.js";
import { startGrpcJsServer, unaryMethod } from "../support/grpc-js-server.js";
import { startPrivateConsul, type PrivateConsul } from "../support/private-consul.js";
import { killProcess, startServiceProcess, type ServiceProcess } from "../support/service-process.js";

const echoPath = `/${EchoService.typeName}/Echo`;
const subsets = { v1: { Filter: 'Service.Meta.version == "1"' }, v2: { Filter: 'Service.Meta.version == "2"' }, v3: { Filter: 'Service.Meta.version == "3"' } };

/** A retry policy of the channel's own for Echo (idempotent), with no throttling: 5 attempts on UNAVAILABLE. */
const echoRetryPolicy = {
  name: [{ service: EchoService.typeName }],
  retryPolicy: { maxAttempts: 5, initialBackoff: "0.01s", maxBackoff: "0.05s", backoffMultiplier: 2, retryableStatusCodes: ["UNAVAILABLE"] },
};

/**
 * A grpc-js echo server in this process that answers every call OK (with `id`) or UNAVAILABLE
 * with no response headers (trailers only). The echo processes' injected faults come after their
 * response headers, which commits a grpc-js call (gRFC A6): no retryPolicy would retry those.
 */
function startInProcessEcho(id: string, answer: "ok" | "unavailable"): Promise<{ port: number; stop: () => void }> {
  return startGrpcJsServer([
    unaryMethod(EchoService.method.echo, (_call, callback) =>
      answer === "ok" ? callback(null, create(EchoResponseSchema, { message: "x", instanceId: id })) : callback({ code: grpc.status.UNAVAILABLE, details: "this instance is failing" }),
    ),
  ]);
}

function countBy(values: readonly string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const value of values) counts.set(value, (counts.get(value) ?? 0) + 1);
  return counts;
}

/** How many calls in a row went to the instance of the call before: none under round_robin, about half under random over two. */
function repeats(ids: readonly string[]): number {
  let count = 0;
  for (let i = 1; i < ids.length; i++) if (ids[i] === ids[i - 1]) count++;
  return count;
}

describe("meshkit/grpc-js: a consul: channel carries the chain's load-balancer policy and splits (private Consul, echo processes of three versions)", function () {
  this.timeout(180_000);
  const service = `echo-grpcjs-chain-${randomUUID().slice(0, 8)}`;
  let agent: PrivateConsul | undefined;
  const instances: { version: string; process: ServiceProcess }[] = [];
  const channels: grpc.Client[] = [];
  const transports: MeshTransport[] = [];

  const writeEntry = (entry: Record<string, unknown>) => consulRequest("PUT", "/config", entry, { agent: agent!.address });
  const deleteEntry = (kind: string) => consulRequest("DELETE", `/config/${kind}/${service}`, undefined, { agent: agent!.address }).catch(() => undefined);
  const versionOf = (id: string) => instances.find((instance) => instance.process.instanceId === id)?.version ?? `unknown ${id}`;
  const instancesOf = (version: string) => instances.filter((instance) => instance.version === version).map((instance) => instance.process);

  /** A grpc-js channel on `consul://<private agent>/<name>` with `serviceConfig` as its own. */
  const channel = (serviceConfig: object, name = service) => {
    const client = new grpc.Client(`consul://${agent!.address}/${name}`, grpc.credentials.createInsecure(), { "grpc.service_config": JSON.stringify(serviceConfig) });
    channels.push(client);
    /** One Echo call; resolves with the id of the instance that answered. */
    const echo = (headers: Record<string, string> = {}) => {
      const metadata = new grpc.Metadata();
      for (const [key, value] of Object.entries(headers)) metadata.set(key, value);
      return new Promise<string>((resolve, reject) =>
        client.makeUnaryRequest(
          echoPath,
          (text: string) => Buffer.from(toBinary(EchoRequestSchema, create(EchoRequestSchema, { message: text }))),
          (bytes: Buffer) => fromBinary(EchoResponseSchema, bytes).instanceId,
          "x",
          metadata,
          { deadline: Date.now() + 5000 },
          (error, id) => (error ? reject(error) : resolve(id!)),
        ),
      );
    };
    /** `calls` calls one after another: instance ids, and the errors of the calls that failed. */
    const sequential = async (calls: number) => {
      const ids: string[] = [];
      const errors: unknown[] = [];
      for (let i = 0; i < calls; i++) await echo().then((id) => ids.push(id), (error: unknown) => errors.push(error));
      return { ids, errors };
    };
    return { echo, sequential };
  };

  before(async () => {
    agent = await startPrivateConsul();
    const start = (version: string) =>
      startServiceProcess("src/reference/services/echo/main.ts", { SERVICE_NAME: service, SERVICE_VERSION: version, CONSUL_HTTP_ADDR: agent!.address, CONSUL_CHECK_INTERVAL: "1s", ECHO_FAULT_SIGNALS: "1" });
    const versions = ["v1", "v1", "v2"];
    const started = await Promise.all(versions.map((version) => start(version.slice(1))));
    started.forEach((process, i) => instances.push({ version: versions[i]!, process }));
    await eventually("every instance to pass its check in the private Consul", async () => {
      const entries = (await consulRequest("GET", `/health/service/${service}?passing=true`, undefined, { agent: agent!.address })) as unknown[];
      return entries.length === instances.length ? true : undefined;
    });
    // Splitters need an L7 protocol.
    await writeEntry({ Kind: "service-defaults", Name: service, Protocol: "grpc" });
    registerConsulResolver({ consul: agent.client });
  });

  afterEach(async () => {
    for (const client of channels.splice(0)) client.close();
    for (const transport of transports.splice(0)) transport.close();
    for (const kind of ["service-router", "service-splitter", "service-resolver"]) await deleteEntry(kind);
    for (const instance of instances) instance.process.signal("SIGUSR2"); // heals an injected fault
  });

  after(async () => {
    await Promise.all(instances.map((instance) => killProcess(instance.process)));
    await agent?.stop();
  });

  it("a resolver's LoadBalancer { Policy = \"random\" } replaces the channel's round_robin (runs on one instance appear), and deleting it brings round_robin back", async () => {
    await writeEntry({ Kind: "service-resolver", Name: service, DefaultSubset: "v1", Subsets: subsets });
    const { sequential } = channel(recommendedServiceConfig());
    await eventually("both v1 instances to answer", async () => (new Set((await sequential(8)).ids).size === 2 ? true : undefined));
    // round_robin over the two v1 instances alternates: no call goes where the one before it went.
    const before = await sequential(200);
    assert.deepEqual(before.errors, []);
    assert.equal(repeats(before.ids), 0, "round_robin alternates");

    await writeEntry({ Kind: "service-resolver", Name: service, DefaultSubset: "v1", Subsets: subsets, LoadBalancer: { Policy: "random" } });
    // Random over two: each call goes where the one before went half the time (100 of 200, sd 7).
    await eventually("the random policy to apply", async () => (repeats((await sequential(40)).ids) >= 8 ? true : undefined), { timeoutMs: 10_000, intervalMs: 10 });
    const random = await sequential(200);
    assert.deepEqual(random.errors, []);
    console.log(`      random: ${repeats(random.ids)} of 199 calls went where the one before went`);
    assert.ok(repeats(random.ids) >= 70, `${repeats(random.ids)} repeats`);
    assert.deepEqual([...new Set(random.ids.map(versionOf))], ["v1"], "the subset still applies");

    await writeEntry({ Kind: "service-resolver", Name: service, DefaultSubset: "v1", Subsets: subsets });
    await eventually("round_robin again", async () => (repeats((await sequential(40)).ids) === 0 ? true : undefined), { timeoutMs: 10_000, intervalMs: 10 });
  });

  it("the channel's own retryPolicy still applies under the chain's policy: of two instances one failing, random between them, no more than a few calls fail", async () => {
    // Two in-process instances, registered by hand (no check: passing), one failing trailers-only.
    const name = `${service}-retry`;
    const servers = await Promise.all([startInProcessEcho("good", "ok"), startInProcessEcho("failing", "unavailable")]);
    const register = (port: number, i: number) => consulRequest("PUT", "/agent/service/register", { ID: `${name}-${i}`, Name: name, Address: "127.0.0.1", Port: port }, { agent: agent!.address });
    try {
      await Promise.all(servers.map((server, i) => register(server.port, i)));
      await consulRequest("PUT", "/config", { Kind: "service-resolver", Name: name, LoadBalancer: { Policy: "random" } }, { agent: agent!.address });
      const withRetries = channel({ loadBalancingConfig: [{ round_robin: {} }], methodConfig: [echoRetryPolicy] }, name);
      const withoutRetries = channel({ loadBalancingConfig: [{ round_robin: {} }] }, name);
      // The random policy applies once the calls that fail are not every other one: round_robin would alternate.
      await eventually("the random policy over both instances", async () => {
        const { ids, errors } = await withoutRetries.sequential(40);
        return errors.length > 0 && repeats(ids) > 0 ? true : undefined;
      });
      // Without a retry policy about half the calls fail (the failing instance is drawn half the time).
      const control = await withoutRetries.sequential(200);
      console.log(`      without a retry policy ${control.errors.length} of 200 calls failed`);
      assert.ok(control.errors.length >= 60, `${control.errors.length} failed`);
      // With it, a call fails only if all 5 attempts draw the failing instance: 1/32, about 6 of 200.
      // Had the chain's service config replaced the channel's, about 100 would.
      const retried = await withRetries.sequential(200);
      console.log(`      with the channel's retry policy under the chain's random policy ${retried.errors.length} of 200 failed`);
      assert.ok(retried.errors.length <= 20, `${retried.errors.length} failed`);
      assert.deepEqual([...new Set(retried.ids)], ["good"]);
    } finally {
      await consulRequest("DELETE", `/config/service-resolver/${name}`, undefined, { agent: agent!.address }).catch(() => undefined);
      await Promise.all(servers.map((_, i) => consulRequest("PUT", `/agent/service/deregister/${name}-${i}`, undefined, { agent: agent!.address }).catch(() => undefined)));
      for (const server of servers) server.stop();
    }
  });

  it("a resolver's LoadBalancer { Policy = \"least_request\" } sends calls to the instance with fewer in flight: a slow one of two gets few, where round_robin gave it half", async () => {
    // Two in-process instances registered by hand (no check: passing), one answering after 150 ms.
    const name = `${service}-least`;
    const servers = await Promise.all(
      [0, 150].map((delayMs) =>
        startGrpcJsServer([
          unaryMethod(EchoService.method.echo, (_call, callback) => {
            const answer = () => callback(null, create(EchoResponseSchema, { message: "x", instanceId: delayMs === 0 ? "fast" : "slow" }));
            if (delayMs === 0) answer();
            else setTimeout(answer, delayMs);
          }),
        ]),
      ),
    );
    const register = (port: number, i: number) => consulRequest("PUT", "/agent/service/register", { ID: `${name}-${i}`, Name: name, Address: "127.0.0.1", Port: port }, { agent: agent!.address });
    try {
      await Promise.all(servers.map((server, i) => register(server.port, i)));
      /** The fast instance's share of 96 calls, 8 in flight. */
      const fastShare = async (echo: () => Promise<string>) => {
        const ids: string[] = [];
        await Promise.all(Array.from({ length: 8 }, async () => {
          for (let i = 0; i < 12; i++) ids.push(await echo());
        }));
        return ids.filter((id) => id === "fast").length / ids.length;
      };
      const roundRobin = channel(recommendedServiceConfig(), name);
      await eventually("both instances to answer", async () => (new Set((await roundRobin.sequential(4)).ids).size === 2 ? true : undefined));
      const control = await fastShare(roundRobin.echo);
      console.log(`      round_robin: the fast instance answered ${(control * 100).toFixed(0)}% of the calls`);
      assert.ok(control <= 0.6, `round_robin gave the fast instance ${control}`);

      await consulRequest("PUT", "/config", { Kind: "service-resolver", Name: name, LoadBalancer: { Policy: "least_request" } }, { agent: agent!.address });
      const leastRequest = channel(recommendedServiceConfig(), name);
      const share = await eventually("least_request to apply", async () => {
        const measured = await fastShare(leastRequest.echo);
        return measured >= 0.7 ? measured : undefined;
      }, { timeoutMs: 15_000, intervalMs: 10 });
      console.log(`      least_request: the fast instance answered ${(share * 100).toFixed(0)}% of the calls`);
    } finally {
      await consulRequest("DELETE", `/config/service-resolver/${name}`, undefined, { agent: agent!.address }).catch(() => undefined);
      await Promise.all(servers.map((_, i) => consulRequest("PUT", `/agent/service/deregister/${name}-${i}`, undefined, { agent: agent!.address }).catch(() => undefined)));
      for (const server of servers) server.stop();
    }
  });

  it("a 90/10 splitter between two subsets: v2's measured share within 2 points of 10% over 4,000 calls; v1's two instances share v1's 90% by round_robin", async () => {
    await writeEntry({ Kind: "service-resolver", Name: service, Subsets: subsets });
    await writeEntry({ Kind: "service-splitter", Name: service, Splits: [{ Weight: 90, ServiceSubset: "v1" }, { Weight: 10, ServiceSubset: "v2" }] });
    const { echo } = channel(recommendedServiceConfig({ services: [EchoService] }));
    await eventually("the split: every instance answering", async () => (new Set(await Promise.all(Array.from({ length: 60 }, () => echo()))).size === 3 ? true : undefined), { timeoutMs: 10_000, intervalMs: 20 });
    const ids: string[] = [];
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (ids.length < 4000) ids.push(await echo());
      }),
    );
    const counts = countBy(ids.slice(0, 4000));
    const share = (id: string) => (100 * (counts.get(id) ?? 0)) / 4000;
    const [a, b] = instancesOf("v1").map((process) => share(process.instanceId));
    const v2 = share(instancesOf("v2")[0]!.instanceId);
    console.log(`      v1 ${a!.toFixed(2)}% + ${b!.toFixed(2)}%, v2 ${v2.toFixed(2)}% of 4,000 calls`);
    assert.ok(Math.abs(v2 - 10) <= 2, `v2 got ${v2}%`);
    assert.ok(Math.abs(a! - 45) <= 3 && Math.abs(b! - 45) <= 3, `v1's instances got ${a}% and ${b}%`);
  });

  it("a split leg with no passing instance gets no share (no call fails); with a failover target it takes that target's instances", async () => {
    await writeEntry({ Kind: "service-resolver", Name: service, Subsets: subsets });
    await writeEntry({ Kind: "service-splitter", Name: service, Splits: [{ Weight: 50, ServiceSubset: "v1" }, { Weight: 50, ServiceSubset: "v3" }] });
    const { echo, sequential } = channel(recommendedServiceConfig());
    await eventually("the split to apply: v1 only", async () => {
      const versions = new Set((await Promise.all(Array.from({ length: 30 }, () => echo()))).map(versionOf));
      return versions.size === 1 && versions.has("v1") ? true : undefined;
    });
    const empty = await sequential(100);
    assert.deepEqual(empty.errors, []);
    assert.deepEqual([...new Set(empty.ids.map(versionOf))], ["v1"]);

    await writeEntry({ Kind: "service-resolver", Name: service, Subsets: subsets, Failover: { v3: { Targets: [{ ServiceSubset: "v2" }] } } });
    await eventually("v3's leg to fail over to v2", async () => (new Set((await sequential(30)).ids.map(versionOf)).has("v2") ? true : undefined), { timeoutMs: 10_000, intervalMs: 20 });
    const failedOver = countBy((await sequential(400)).ids.map(versionOf));
    console.log(`      v1 ${failedOver.get("v1")}, v2 (v3's failover) ${failedOver.get("v2")} of 400`);
    assert.ok(Math.abs((failedOver.get("v2") ?? 0) - 200) <= 50, JSON.stringify([...failedOver]));
  });

  it("ring_hash on a header: one key keeps one instance, keys spread over all three, each on the instance the mesh client sends it to", async () => {
    await writeEntry({ Kind: "service-resolver", Name: service, LoadBalancer: { Policy: "ring_hash", HashPolicies: [{ Field: "header", FieldValue: "x-user" }] } });
    const { echo } = channel(recommendedServiceConfig());
    const transport = createMeshTransport({ service, consul: agent!.client, metrics: new Registry(), balancer: "round_robin" });
    transports.push(transport);
    const mesh = createClient(EchoService, transport);
    // Ready when every instance is connected (the ring is over the READY ones) and the policy applies: a key stays put.
    await eventually("the ring, every instance connected", async () => {
      const ids = await Promise.all(Array.from({ length: 30 }, (_, i) => echo({ "x-user": `warm-${i % 3}` })));
      const byKey = [0, 1, 2].map((k) => new Set(ids.filter((_, i) => i % 3 === k)).size);
      const all = new Set(await Promise.all(Array.from({ length: 30 }, (_, i) => echo({ "x-user": `spread-${i}` }))));
      return byKey.every((size) => size === 1) && all.size === 3 ? true : undefined;
    }, { timeoutMs: 10_000, intervalMs: 50 });
    const owners = new Map<string, Set<string>>();
    for (let user = 0; user < 30; user++) {
      const key = `user-${user}`;
      const ids = new Set<string>();
      for (let i = 0; i < 5; i++) ids.add(await echo({ "x-user": key }));
      owners.set(key, ids);
    }
    for (const [key, ids] of owners) assert.equal(ids.size, 1, `${key} landed on ${[...ids].join(", ")}`);
    assert.equal(new Set([...owners.values()].map((ids) => [...ids][0])).size, 3, "keys spread over the three instances");
    await eventually("the mesh client's ring", async () => (transport.routing?.chain?.includes("ring_hash") ? true : undefined));
    for (const [key, ids] of owners) {
      const meshOwner = (await mesh.echo({ message: "x" }, { headers: { "x-user": key } })).instanceId;
      assert.equal(meshOwner, [...ids][0], `${key}: the mesh client's instance`);
    }
  });

  it("a router whose routes lead to different subsets stays the mesh client's: the channel resolves the service itself, every version", async () => {
    await writeEntry({ Kind: "service-resolver", Name: service, DefaultSubset: "v1", Subsets: subsets });
    const { echo } = channel(recommendedServiceConfig());
    await eventually("v1 only", async () => ([...new Set((await Promise.all(Array.from({ length: 12 }, () => echo()))).map(versionOf))].join() === "v1" ? true : undefined));
    await writeEntry({ Kind: "service-router", Name: service, Routes: [{ Match: { HTTP: { Header: [{ Name: "x-canary", Present: true }] } }, Destination: { ServiceSubset: "v2" } }] });
    await eventually("the service itself: v1 and v2 without the header", async () => (new Set((await Promise.all(Array.from({ length: 30 }, () => echo()))).map(versionOf)).size === 2 ? true : undefined));
  });
});
