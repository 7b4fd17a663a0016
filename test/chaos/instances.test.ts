import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { createClient } from "@connectrpc/connect";
import { Registry } from "prom-client";
import { EchoService } from "../../gen/meshkit/echo/v1/echo_pb.js";
import { createMeshTransport, type MeshEvent, type MeshTransport, type MeshTransportOptions } from "../../src/client/index.js";
import { consul, eventually } from "../support/infra.js";
import { percentile, runLoad } from "../support/load.js";
import { killProcess, startServiceProcess, type ServiceProcess } from "../support/service-process.js";

/**
 * Faulty instances under steady load, each bounded in time: a hung instance (SIGSTOP) and a
 * slow one (latency injected by ECHO_DELAY_MS). Idempotent calls must see no error; errors and
 * p99 are reported.
 */
describe("chaos: hung and slow instances under steady load", function () {
  this.timeout(120_000);
  const run = randomUUID().slice(0, 8);
  const transports: MeshTransport[] = [];
  const processes: ServiceProcess[] = [];

  const meshClient = (service: string, options: Partial<MeshTransportOptions>) => {
    const transport = createMeshTransport({ service, consul, metrics: new Registry(), ...options });
    transports.push(transport);
    return { transport, client: createClient(EchoService, transport) };
  };
  const startEchoes = async (service: string, envs: Record<string, string>[]) => {
    const started = await Promise.all(envs.map((env) => startServiceProcess("src/reference/services/echo/main.ts", { SERVICE_NAME: service, CONSUL_CHECK_INTERVAL: "1s", ...env })));
    processes.push(...started);
    return started;
  };
  const report = (name: string, result: { calls: number; errors: unknown[]; latenciesMs: number[] }) =>
    console.log(`      ${name}: ${result.calls} calls, ${result.errors.length} errors, p50 ${percentile(result.latenciesMs, 50).toFixed(1)} ms, p99 ${percentile(result.latenciesMs, 99).toFixed(1)} ms`);

  after(async () => {
    for (const transport of transports) transport.close();
    await Promise.all(processes.map(killProcess));
  });

  it("a hung instance (SIGSTOP): attempt timeouts and its breaker keep every call succeeding", async () => {
    const service = `echo-hung-${run}`;
    const [hung] = await startEchoes(service, [{}, {}, {}]);
    const events: MeshEvent[] = [];
    const { transport, client } = meshClient(service, {
      balancer: "round_robin",
      attemptTimeoutMs: 250,
      breaker: { volumeThreshold: 3, errorThresholdPercentage: 50, resetTimeoutMs: 30_000 },
      onEvent: (event) => events.push(event),
    });
    await eventually("three instances", async () => (transport.endpoints.length === 3 ? true : undefined));
    setTimeout(() => hung!.signal("SIGSTOP"), 500);

    try {
      const result = await runLoad(() => client.echo({ message: "steady" }, { timeoutMs: 3000 }), { durationMs: 4000, concurrency: 4, maxCalls: 50_000 });
      report("hung instance", result);
      assert.deepEqual(result.errors.map(String), []);
      // A call that met the hung instance waited one attempt timeout, then went elsewhere.
      assert.ok(percentile(result.latenciesMs, 99) < 1000, `p99 ${percentile(result.latenciesMs, 99)} ms`);
      // Its breaker opened after a few consecutive timeouts, before Consul's check (1 s interval,
      // 2 s timeout) could drop it.
      const opened = events.findIndex((e) => e.type === "breaker" && e.instance === hung!.instanceId && e.state === "open");
      const listsHung = (e: MeshEvent) => e.type === "instances" && e.instances.some((i) => i.id === hung!.instanceId);
      const firstListed = events.findIndex(listsHung);
      const dropped = events.findIndex((e, i) => i > firstListed && e.type === "instances" && !listsHung(e));
      assert.ok(opened >= 0, "the hung instance's breaker never opened");
      assert.ok(dropped === -1 || opened < dropped, "Consul dropped the hung instance before its breaker opened");
    } finally {
      hung!.signal("SIGCONT");
    }
  });

  it("a slow instance: peak_ewma steers most calls away from it, with no error", async () => {
    const service = `echo-slow-${run}`;
    const [slow] = await startEchoes(service, [{ ECHO_DELAY_MS: "150" }, {}, {}]);
    const { transport, client } = meshClient(service, { balancer: "peak_ewma" });
    await eventually("three instances", async () => (transport.endpoints.length === 3 ? true : undefined));
    const answeredBy: string[] = [];
    const result = await runLoad(async () => answeredBy.push((await client.echo({ message: "x" })).instanceId), { durationMs: 3000, concurrency: 4, maxCalls: 50_000 });
    report("slow instance, peak_ewma", result);
    assert.deepEqual(result.errors.map(String), []);
    const slowShare = answeredBy.filter((id) => id === slow!.instanceId).length / answeredBy.length;
    console.log(`      share of calls sent to the slow instance: ${(slowShare * 100).toFixed(1)}% (round robin would send 33%)`);
    assert.ok(slowShare < 0.1, `slow instance got ${(slowShare * 100).toFixed(1)}%`);
  });
});
