import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Registry } from "prom-client";
import { EchoService } from "../../gen/meshkit/echo/v1/echo_pb.js";
import { createMeshTransport, type MeshTransport } from "../../src/client/index.js";
import { eventually, grpcCheckStatus } from "../support/infra.js";
import { consulRequest } from "../support/mesh.js";
import { startPrivateWan, type PrivateWan } from "../support/private-consul.js";
import { killProcess, startServiceProcess, type ServiceProcess } from "../support/service-process.js";

/** Waits until `instance`, called directly, answers as `state` (fault signals arrive asynchronously). */
async function untilInstance(instance: ServiceProcess, state: "failing" | "healthy"): Promise<void> {
  const direct = createClient(EchoService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${instance.port}` }));
  await eventually(`${instance.instanceId} to be ${state}`, () =>
    direct.echo({ message: "probe" }).then(
      () => (state === "healthy" ? true : undefined),
      () => (state === "failing" ? true : undefined),
    ),
  { intervalMs: 20 });
}

/** Calls from `concurrency` workers until stopped, keeping which instance answered each call, and when. */
function startLoad(call: () => Promise<string>, concurrency: number) {
  let stopped = false;
  const served: { at: number; id: string }[] = [];
  const errors: unknown[] = [];
  const started = performance.now();
  const done = Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (!stopped && served.length + errors.length < 500_000) {
        await call().then(
          (id) => void served.push({ at: performance.now() - started, id }),
          (error: unknown) => void errors.push(error),
        );
      }
    }),
  );
  return {
    served,
    errors,
    elapsed: () => performance.now() - started,
    async stop() {
      stopped = true;
      await done;
    },
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("failover across datacenters: two Consul datacenters joined over the WAN", function () {
  this.timeout(180_000);
  const service = `echo-dc-${randomUUID().slice(0, 8)}`;
  let wan: PrivateWan | undefined;
  const dc1: ServiceProcess[] = [];
  const dc2: ServiceProcess[] = [];
  const transports: MeshTransport[] = [];
  const dcOf = (id: string) => (dc1.some((p) => p.instanceId === id) ? "dc1" : dc2.some((p) => p.instanceId === id) ? "dc2" : `unknown ${id}`);
  const envOf = (agent: string) => ({ SERVICE_NAME: service, CONSUL_HTTP_ADDR: agent, CONSUL_CHECK_INTERVAL: "1s", ECHO_FAULT_SIGNALS: "1" });
  const meshClient = () => {
    const transport = createMeshTransport({
      service,
      consul: wan!.dc1.client,
      metrics: new Registry(),
      balancer: "round_robin",
      breaker: { volumeThreshold: 5, resetTimeoutMs: 1000 },
    });
    transports.push(transport);
    return { transport, client: createClient(EchoService, transport) };
  };
  const passingIn = async (agent: PrivateWan["dc1"], instances: ServiceProcess[]) =>
    eventually("the instances to pass", async () => ((await Promise.all(instances.map((i) => grpcCheckStatus(service, i.instanceId, agent.client)))).every((s) => s === "passing") ? true : undefined));

  before(async () => {
    wan = await startPrivateWan();
    dc1.push(...(await Promise.all([1, 2].map(() => startServiceProcess("src/reference/services/echo/main.ts", envOf(wan!.dc1.address))))));
    dc2.push(...(await Promise.all([1, 2].map(() => startServiceProcess("src/reference/services/echo/main.ts", envOf(wan!.dc2.address))))));
    await passingIn(wan.dc1, dc1);
    await passingIn(wan.dc2, dc2);
    // The resolver deploy/consul ships for orders: when no instance is healthy here, dc2's.
    await consulRequest("PUT", "/config", { Kind: "service-resolver", Name: service, Failover: { "*": { Datacenters: ["dc2"] } } }, { agent: wan.dc1.address });
  });

  after(async () => {
    for (const transport of transports) transport.close();
    await Promise.all([...dc1, ...dc2].map(killProcess));
    await wan?.stop();
  });

  it("compiles dc2's target as the failover of dc1's; calls stay in dc1 while it is healthy", async () => {
    const { transport, client } = meshClient();
    const served: string[] = [];
    for (let i = 0; i < 40; i++) served.push(dcOf((await client.echo({ message: "x" })).instanceId));
    assert.deepEqual([...new Set(served)], ["dc1"]);
    assert.deepEqual([...(transport.routing?.targets.keys() ?? [])], [`${service}.default.default.dc1`, `${service}.default.default.dc2`]);
    assert.deepEqual(transport.routing?.targets.get(`${service}.default.default.dc2`)?.map((e) => e.instance.id).sort(), dc2.map((p) => p.instanceId).sort());
  });

  it("every dc1 instance failing under steady load: no idempotent call fails, dc2 serves them, and dc1 takes them back once it heals", async () => {
    const { client } = meshClient();
    await client.echo({ message: "warm" });
    const load = startLoad(async () => (await client.echo({ message: "steady" }, { timeoutMs: 3000 })).instanceId, 4);
    let failedAt = 0;
    let healedAt = 0;
    try {
      await sleep(1000);
      failedAt = load.elapsed();
      for (const instance of dc1) instance.signal("SIGUSR1");
      for (const instance of dc1) await untilInstance(instance, "failing");
      await sleep(3000);
      healedAt = load.elapsed();
      for (const instance of dc1) instance.signal("SIGUSR2");
      for (const instance of dc1) await untilInstance(instance, "healthy");
      await eventually("dc1 to take the calls back", async () => {
        const recent = load.served.slice(-50);
        return recent.length === 50 && recent.every((call) => dcOf(call.id) === "dc1") ? true : undefined;
      }, { timeoutMs: 15_000, intervalMs: 100 });
    } finally {
      await load.stop();
    }
    const during = load.served.filter((call) => call.at > failedAt + 1000 && call.at < healedAt);
    const inDc2 = during.filter((call) => dcOf(call.id) === "dc2").length;
    const back = load.served.filter((call) => call.at > healedAt).find((call) => dcOf(call.id) === "dc1");
    console.log(`      ${load.served.length} calls, ${load.errors.length} failed; while dc1 failed ${inDc2} of ${during.length} served by dc2; dc1 served again ${((back?.at ?? NaN) - healedAt).toFixed(0)} ms after healing`);
    assert.deepEqual(load.errors.map(String), []);
    assert.ok(during.length > 100, `only ${during.length} calls while dc1 failed`);
    assert.ok(inDc2 / during.length > 0.95, `dc2 served ${inDc2} of ${during.length}`);
  });

  it("every dc1 instance killed under steady load: no idempotent call fails; new dc1 instances take the calls back", async () => {
    const { client } = meshClient();
    await client.echo({ message: "warm" });
    const load = startLoad(async () => (await client.echo({ message: "steady" }, { timeoutMs: 3000 })).instanceId, 4);
    try {
      await sleep(1000);
      const killed = dc1.splice(0, dc1.length);
      for (const instance of killed) instance.signal("SIGKILL");
      await Promise.all(killed.map((instance) => instance.exited));
      await sleep(3000);
      dc1.push(...(await Promise.all([1, 2].map(() => startServiceProcess("src/reference/services/echo/main.ts", envOf(wan!.dc1.address))))));
      await eventually("dc1 to take the calls back", async () => {
        const recent = load.served.slice(-50);
        return recent.length === 50 && recent.every((call) => dcOf(call.id) === "dc1") ? true : undefined;
      }, { timeoutMs: 20_000, intervalMs: 100 });
    } finally {
      await load.stop();
    }
    console.log(`      ${load.served.length} calls, ${load.errors.length} failed, ${load.served.filter((call) => dcOf(call.id) === "dc2").length} served by dc2`);
    assert.deepEqual(load.errors.map(String), []);
    assert.ok(load.served.some((call) => dcOf(call.id) === "dc2"));
  });
});
