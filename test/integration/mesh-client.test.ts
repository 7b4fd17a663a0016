import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Registry } from "prom-client";
import { EchoService } from "../../gen/meshkit/echo/v1/echo_pb.js";
import { createMeshTransport, type MeshEvent, type MeshTransport, type MeshTransportOptions } from "../../src/client/index.js";
import { startTestTelemetry, testCallerName } from "../support/telemetry.js";
import { consul, eventually, grpcCheckStatus, jaegerQueryUrl } from "../support/infra.js";
import { percentile, runLoad } from "../support/load.js";
import { raiseIndex, startPrivateConsul, type PrivateConsul } from "../support/private-consul.js";
import { killProcess, startServiceProcess, type ServiceProcess } from "../support/service-process.js";

/**
 * Waits until `instance`, called directly, answers as `state`: fault signals (SIGUSR1/SIGUSR2)
 * reach the process asynchronously, so a test must not assume the very next call sees them.
 */
async function untilInstance(instance: ServiceProcess, state: "failing" | "healthy"): Promise<void> {
  const direct = createClient(EchoService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${instance.port}` }));
  await eventually(`${instance.instanceId} to be ${state}`, () =>
    direct.echo({ message: "probe" }).then(
      () => (state === "healthy" ? true : undefined),
      () => (state === "failing" ? true : undefined),
    ),
  );
}

function countBy(ids: string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const id of ids) counts.set(id, (counts.get(id) ?? 0) + 1);
  return counts;
}

/** Milliseconds until `condition` holds, polling every 10 ms, failing after `timeoutMs`. */
async function msUntil(what: string, condition: () => boolean, timeoutMs = 10_000): Promise<number> {
  const started = performance.now();
  await eventually(what, async () => (condition() ? true : undefined), { timeoutMs, intervalMs: 10 });
  return performance.now() - started;
}

describe("mesh client: real Consul, three echo processes", function () {
  this.timeout(120_000);
  const service = `echo-mesh-${randomUUID().slice(0, 8)}`;
  const instances: ServiceProcess[] = [];
  const transports: MeshTransport[] = [];

  const meshClient = (options: Partial<MeshTransportOptions> = {}) => {
    const transport = createMeshTransport({ service, consul, metrics: new Registry(), ...options });
    transports.push(transport);
    return { transport, client: createClient(EchoService, transport) };
  };

  before(async () => {
    startTestTelemetry();
    const env = { SERVICE_NAME: service, CONSUL_CHECK_INTERVAL: "1s", ECHO_FAULT_SIGNALS: "1" };
    instances.push(...(await Promise.all([1, 2, 3].map(() => startServiceProcess("src/reference/services/echo/main.ts", env)))));
    await eventually("all three instances to pass", async () => {
      const statuses = await Promise.all(instances.map((i) => grpcCheckStatus(service, i.instanceId)));
      return statuses.every((status) => status === "passing") ? true : undefined;
    });
  });

  after(async () => {
    for (const transport of transports) transport.close();
    await Promise.all(instances.map(killProcess));
  });

  it("round_robin sends each instance exactly its turn", async () => {
    const { client } = meshClient({ balancer: "round_robin" });
    const ids: string[] = [];
    for (let i = 0; i < 300; i++) ids.push((await client.echo({ message: "rr" })).instanceId);
    const counts = countBy(ids);
    assert.equal(counts.size, 3);
    for (const instance of instances) assert.equal(counts.get(instance.instanceId), 100);
  });

  for (const balancer of ["random", "least_outstanding", "peak_ewma"]) {
    it(`${balancer} reaches every instance, none starved`, async () => {
      const { client } = meshClient({ balancer });
      const ids: string[] = [];
      await runLoad(async () => ids.push((await client.echo({ message: balancer })).instanceId), { durationMs: 10_000, concurrency: 6, maxCalls: 600 });
      const counts = countBy(ids);
      for (const instance of instances) assert.ok((counts.get(instance.instanceId) ?? 0) >= 60, `${instance.instanceId}: ${counts.get(instance.instanceId)} of 600`);
    });
  }

  it("streams from one instance, picked when the stream opens", async () => {
    const { client } = meshClient({ balancer: "round_robin" });
    const parts = [];
    for await (const part of client.echoStream({ message: "s", count: 5 })) parts.push(part);
    assert.deepEqual(parts.map((p) => p.sequence), [1, 2, 3, 4, 5]);
    assert.equal(new Set(parts.map((p) => p.instanceId)).size, 1);
  });

  it("puts the client span in Jaeger as the parent of the server span", async () => {
    const { client } = meshClient();
    await client.echo({ message: "trace me" });
    const trace = await eventually("the trace in Jaeger", async () => {
      const response = await fetch(`${jaegerQueryUrl}/api/traces?service=${service}&operation=${encodeURIComponent("meshkit.echo.v1.EchoService/Echo")}&limit=50`);
      const body = (await response.json()) as { data: { processes: Record<string, { serviceName: string }>; spans: { spanID: string; processID: string; operationName: string; references: { refType: string; spanID: string }[]; tags: { key: string; value: unknown }[] }[] }[] };
      return body.data.find((t) => Object.values(t.processes).some((p) => p.serviceName === testCallerName) && t.spans.some((s) => s.tags.some((tag) => tag.key === "meshkit.service" && tag.value === service)));
    });
    const serviceOf = (span: { processID: string }) => trace.processes[span.processID]!.serviceName;
    const clientSpan = trace.spans.find((s) => serviceOf(s) === testCallerName)!;
    const serverSpan = trace.spans.find((s) => serviceOf(s) === service)!;
    assert.equal(clientSpan.operationName, "meshkit.echo.v1.EchoService/Echo");
    assert.equal(clientSpan.tags.find((t) => t.key === "span.kind")?.value, "client");
    assert.deepEqual(serverSpan.references.find((r) => r.refType === "CHILD_OF")?.spanID, clientSpan.spanID);
  });

  it("opens the breaker of a failing instance without failing calls, and closes it once healed", async () => {
    const events: MeshEvent[] = [];
    const { client } = meshClient({
      balancer: "round_robin",
      breaker: { volumeThreshold: 3, errorThresholdPercentage: 50, resetTimeoutMs: 1000 },
      onEvent: (event) => events.push(event),
    });
    const sick = instances[0]!;
    const breakerOf = (state: string) => events.some((e) => e.type === "breaker" && e.instance === sick.instanceId && e.state === state);
    sick.signal("SIGUSR1");
    await untilInstance(sick, "failing");
    try {
      for (let i = 0; i < 60; i++) assert.notEqual((await client.echo({ message: "x" })).instanceId, sick.instanceId);
      assert.ok(breakerOf("open"), "the sick instance's breaker never opened");
    } finally {
      sick.signal("SIGUSR2");
    }
    await eventually("the breaker to close after healing", async () => {
      await client.echo({ message: "probe" });
      return breakerOf("closed") ? true : undefined;
    }, { timeoutMs: 10_000, intervalMs: 50 });
    assert.ok(breakerOf("half_open"));
  });

  it("stops retrying at the budget when every instance fails", async () => {
    const registry = new Registry();
    const { client } = meshClient({
      balancer: "round_robin",
      breaker: false,
      metrics: registry,
      retry: { maxAttempts: 3, backoff: { baseMs: 1, maxMs: 2 }, budget: { percentCanRetry: 0.1, minRetriesPerSecond: 0 } },
    });
    for (const instance of instances) instance.signal("SIGUSR1");
    for (const instance of instances) await untilInstance(instance, "failing");
    let failures = 0;
    try {
      for (let i = 0; i < 100; i++) {
        await client.echo({ message: "doomed" }).catch((error: unknown) => {
          assert.equal(ConnectError.from(error).code, Code.Unavailable);
          failures++;
        });
      }
    } finally {
      for (const instance of instances) instance.signal("SIGUSR2");
      for (const instance of instances) await untilInstance(instance, "healthy");
    }
    assert.equal(failures, 100);
    const metrics = await registry.getMetricsAsJSON();
    // Histograms report _bucket, _sum and _count series: count only _count (counters have no suffix).
    const sum = (name: string) =>
      metrics
        .find((m) => m.name === name)
        ?.values.reduce((total, v) => {
          const series = (v as { metricName?: string }).metricName;
          return total + (series === undefined || series.endsWith("_count") ? v.value : 0);
        }, 0) ?? 0;
    const attempts = sum("meshkit_client_attempt_duration_seconds");
    // Without a budget: 300 attempts. With 10%: 100 firsts + about 10 retries.
    assert.ok(attempts >= 100 && attempts <= 112, `attempts: ${attempts}`);
    assert.ok(sum("meshkit_client_retry_budget_exhausted_total") >= 80);
  });

  it("stops sending to an instance within a second of Consul marking it critical", async () => {
    const { transport, client } = meshClient();
    await client.echo({ message: "warm" });
    const frozen = instances[1]!;
    frozen.signal("SIGSTOP");
    try {
      await eventually("Consul to mark it critical", async () => ((await grpcCheckStatus(service, frozen.instanceId)) === "critical" ? true : undefined));
      const lag = await msUntil("the client to drop it", () => !transport.endpoints.some((e) => e.instance.id === frozen.instanceId));
      console.log(`      convergence: dropped ${lag.toFixed(0)} ms after Consul reported the check critical`);
      assert.ok(lag < 1000, `took ${lag} ms`);
    } finally {
      frozen.signal("SIGCONT");
    }
    const back = performance.now();
    await eventually("Consul to pass it again", async () => ((await grpcCheckStatus(service, frozen.instanceId)) === "passing" ? true : undefined));
    const joinLag = await msUntil("the client to take it back", () => transport.endpoints.some((e) => e.instance.id === frozen.instanceId), 15_000);
    console.log(`      convergence: taken back ${joinLag.toFixed(0)} ms after Consul reported it passing (${(performance.now() - back).toFixed(0)} ms after SIGCONT)`);
  });

  it("shows no error to callers of an idempotent method when an instance is SIGKILLed under load", async () => {
    const { client } = meshClient({ balancer: "round_robin" });
    const victim = instances[0]!;
    setTimeout(() => victim.signal("SIGKILL"), 700);
    const result = await runLoad(() => client.echo({ message: "steady" }, { timeoutMs: 3000 }), { durationMs: 3000, concurrency: 4, maxCalls: 20_000 });
    assert.equal(await victim.exited, "SIGKILL");
    console.log(`      instance SIGKILLed: ${result.calls} calls, ${result.errors.length} errors, p50 ${percentile(result.latenciesMs, 50).toFixed(1)} ms, p99 ${percentile(result.latenciesMs, 99).toFixed(1)} ms`);
    assert.ok(result.calls > 100, `only ${result.calls} calls`);
    assert.deepEqual(result.errors.map(String), []);
  });

  it("stops sending to a deregistered instance within a second", async () => {
    const { transport, client } = meshClient({ balancer: "round_robin" });
    await client.echo({ message: "warm" });
    const leaving = instances[2]!;
    const started = performance.now();
    await consul.agent.service.deregister(leaving.instanceId);
    await msUntil("the client to drop it", () => !transport.endpoints.some((e) => e.instance.id === leaving.instanceId));
    console.log(`      convergence: dropped ${(performance.now() - started).toFixed(0)} ms after deregistration`);
    assert.ok(performance.now() - started < 1000, `took ${performance.now() - started} ms`);
    for (let i = 0; i < 20; i++) assert.notEqual((await client.echo({ message: "x" })).instanceId, leaving.instanceId);
  });
});

describe("mesh client: Consul going away", function () {
  this.timeout(120_000);
  const service = `echo-outage-${randomUUID().slice(0, 8)}`;
  let privateConsul: PrivateConsul | undefined;
  const instances: ServiceProcess[] = [];
  let transport: MeshTransport | undefined;

  before(async () => {
    privateConsul = await startPrivateConsul();
    // Before the instances register, so that their service's index is high: the agent restarted
    // empty below must answer with a lower one, the reset the watch detects.
    await raiseIndex(privateConsul);
    const env = { SERVICE_NAME: service, CONSUL_CHECK_INTERVAL: "1s", CONSUL_HTTP_ADDR: privateConsul.address, CONSUL_REREGISTER_INTERVAL_MS: "500" };
    instances.push(...(await Promise.all([1, 2].map(() => startServiceProcess("src/reference/services/echo/main.ts", env)))));
  });
  after(async () => {
    transport?.close();
    await Promise.all(instances.map(killProcess));
    await privateConsul?.stop();
  });

  it("serves every call while Consul is down and restarts empty; the instances re-register by themselves", async () => {
    transport = createMeshTransport({ service, consul: privateConsul!.client, metrics: new Registry(), balancer: "round_robin" });
    const client = createClient(EchoService, transport);
    await eventually("both instances to be known", async () => {
      await client.echo({ message: "warm" }).catch(() => undefined);
      return transport!.endpoints.length === 2 ? true : undefined;
    });
    // Down at 0.5 s, back (with no data: a -dev agent keeps nothing) at 2.5 s, load until 6 s.
    const outage = (async () => {
      await new Promise((resolve) => setTimeout(resolve, 500));
      await privateConsul!.stop();
      await new Promise((resolve) => setTimeout(resolve, 2000));
      await privateConsul!.start();
    })();
    const result = await runLoad(() => client.echo({ message: "through the outage" }), { durationMs: 6000, concurrency: 4, maxCalls: 50_000 });
    await outage;
    assert.deepEqual(result.errors.map(String), []);
    assert.ok(result.calls > 200, `only ${result.calls} calls`);

    // Nobody registers them by hand: each instance notices the agent forgot it.
    await eventually("both instances registered and passing again", async () => {
      const passing = (await privateConsul!.client.health.service({ service, passing: true })) as { Service: { ID: string } }[];
      return passing.length === 2 ? true : undefined;
    }, { timeoutMs: 20_000 });
    await eventually("the watch to follow the restarted agent", async () => (transport!.endpoints.length === 2 ? true : undefined), { timeoutMs: 20_000 });
  });

  it("fails fast with UNAVAILABLE when Consul says no instance passes", async () => {
    const empty = createMeshTransport({ service: `${service}-nobody`, consul: privateConsul!.client, metrics: new Registry() });
    try {
      const started = performance.now();
      await assert.rejects(createClient(EchoService, empty).echo({ message: "x" }), (error: unknown) => {
        const connectError = ConnectError.from(error);
        return connectError.code === Code.Unavailable && /no passing instance/.test(connectError.rawMessage);
      });
      assert.ok(performance.now() - started < 2000);
    } finally {
      empty.close();
    }
  });
});
