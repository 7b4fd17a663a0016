import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError, createClient, createContextValues, type Interceptor } from "@connectrpc/connect";
import { Registry } from "prom-client";
import { EchoService } from "../../gen/meshkit/echo/v1/echo_pb.js";
import { createMeshTransport, outcomeClassifierKey, registerBalancer, type MeshTransport, type MeshTransportOptions } from "../../src/client/index.js";
import { eventually, jaegerQueryUrl } from "../support/infra.js";
import { mutableResolver } from "../support/mutable-resolver.js";
import { startTestTelemetry, testCallerName } from "../support/telemetry.js";
import { killProcess, startServiceProcess, type ServiceProcess } from "../support/service-process.js";

/**
 * Hedging, server pushback, slow start, the classifier overrides and the two interceptor levels,
 * through the transport's public API against real echo processes.
 */
describe("mesh client resilience: hedging, pushback, slow start, classifier, interceptors", function () {
  this.timeout(90_000);
  const run = randomUUID().slice(0, 8);
  const processes: ServiceProcess[] = [];
  const transports: MeshTransport[] = [];
  const inOrder = "in-order-for-feature-tests";
  // Registered only while this suite runs: a balancer left registered would leak into other suites.
  let unregisterInOrder = () => {};
  before(() => {
    unregisterInOrder = registerBalancer(inOrder, () => ({ name: inOrder, picker: (endpoints) => ({ pick: (exclude) => endpoints.find((e) => !exclude?.has(e)) }) }));
  });
  after(() => unregisterInOrder());

  const start = async (name: string, env: Record<string, string> = {}) => {
    const started = await startServiceProcess("src/reference/services/echo/main.ts", { SERVICE_NAME: `echo-feat-${name}-${run}`, CONSUL_CHECK_INTERVAL: "5s", ...env });
    processes.push(started);
    return started;
  };
  const meshOver = (instances: ServiceProcess[], options: Partial<MeshTransportOptions> = {}) => {
    const resolver = mutableResolver(instances.map((i) => ({ id: i.instanceId, port: i.port })));
    const transport = createMeshTransport({ service: `echo-feat-${run}`, resolver, metrics: new Registry(), ...options });
    transports.push(transport);
    return { transport, resolver, client: createClient(EchoService, transport) };
  };
  const codeOf = (error: unknown) => Code[ConnectError.from(error).code];
  const timed = async <T>(work: () => Promise<T>) => {
    const started = performance.now();
    const value = await work();
    return { value, ms: performance.now() - started };
  };

  after(async () => {
    for (const transport of transports) transport.close();
    await Promise.all(processes.map(killProcess));
  });

  describe("hedging", () => {
    let slow: ServiceProcess;
    let fast: ServiceProcess;
    before(async () => {
      [slow, fast] = await Promise.all([start("hedge", { ECHO_DELAY_MS: "1500" }), start("hedge")]);
    });

    it("is off by default: a call that meets the slow instance waits for it", async () => {
      const { client } = meshOver([slow, fast], { balancer: inOrder });
      const { value, ms } = await timed(() => client.echo({ message: "x" }));
      assert.equal(value.instanceId, slow.instanceId);
      assert.ok(ms >= 1400, `${ms} ms`);
    });

    it("sends a hedge to another instance after the delay; the first answer wins and the slow attempt is cancelled", async () => {
      const { client, transport } = meshOver([slow, fast], { balancer: inOrder, hedging: { delayMs: 50 } });
      const { value, ms } = await timed(() => client.echo({ message: "x" }));
      console.log(`      hedged call answered by ${value.instanceId === fast.instanceId ? "the fast instance" : "the slow one"} after ${ms.toFixed(0)} ms`);
      assert.equal(value.instanceId, fast.instanceId);
      assert.ok(ms < 700, `${ms} ms`);
      const slowEndpoint = transport.endpoints.find((e) => e.instance.id === slow.instanceId)!;
      await sleep(100);
      assert.equal(slowEndpoint.load.outstanding, 0, "the losing attempt is still in flight");
    });

    it("records each attempt as a span event with its instance and kind (first, hedge)", async () => {
      startTestTelemetry();
      const service = `echo-feat-trace-${run}`;
      const resolver = mutableResolver([slow, fast].map((i) => ({ id: i.instanceId, port: i.port })));
      const transport = createMeshTransport({ service, resolver, metrics: new Registry(), balancer: inOrder, hedging: { delayMs: 50 } });
      transports.push(transport);
      await createClient(EchoService, transport).echo({ message: "traced" });
      type JaegerTrace = { spans: { tags: { key: string; value: unknown }[]; logs: { fields: { key: string; value: unknown }[] }[] }[] };
      const span = await eventually("the client span in Jaeger", async () => {
        const response = await fetch(`${jaegerQueryUrl}/api/traces?service=${testCallerName}&tags=${encodeURIComponent(JSON.stringify({ "meshkit.service": service }))}&limit=5`);
        const body = (await response.json()) as { data: JaegerTrace[] };
        return body.data.flatMap((t) => t.spans).find((s) => s.tags.some((tag) => tag.key === "meshkit.service" && tag.value === service) && s.logs.length >= 2);
      });
      const attempts = span.logs.map((log) => Object.fromEntries(log.fields.map((f) => [f.key, f.value])));
      const summary = attempts.map((a) => `${String(a["meshkit.attempt.kind"])}@${a["meshkit.instance"] === fast.instanceId ? "fast" : "slow"}`).sort();
      assert.deepEqual(summary, ["first@slow", "hedge@fast"]);
    });

    it("can be turned on per method, and a spent retry budget stops hedges", async () => {
      const perMethod = meshOver([slow, fast], { balancer: inOrder, methods: { Echo: { hedging: { delayMs: 50 } } } });
      assert.ok((await timed(() => perMethod.client.echo({ message: "x" }))).ms < 700);
      const broke = meshOver([slow, fast], { balancer: inOrder, hedging: { delayMs: 50 }, retry: { budget: { percentCanRetry: 0, minRetriesPerSecond: 0 } } });
      const { value } = await timed(() => broke.client.echo({ message: "x" }));
      assert.equal(value.instanceId, slow.instanceId);
    });

    it("hedges after the observed latency percentile once enough calls have answered", async () => {
      const { client } = meshOver([fast, slow], { balancer: "round_robin", hedging: { percentile: 40, minSamples: 20, window: 100, initialDelayMs: 2000 } });
      // Warm-up: before the samples, the initial 2 s delay lets the slow instance answer itself.
      const warm = await Promise.all(Array.from({ length: 20 }, () => timed(() => client.echo({ message: "warm" }))));
      assert.ok(warm.some((w) => w.ms >= 1400));
      for (let i = 0; i < 20; i++) await client.echo({ message: "learn" }).catch(() => undefined);
      const later = await Promise.all(Array.from({ length: 10 }, () => timed(() => client.echo({ message: "x" }))));
      const worst = Math.max(...later.map((l) => l.ms));
      console.log(`      after learning the p40 (half the calls meet the slow instance), the slowest of 10 calls took ${worst.toFixed(0)} ms (the slow instance answers in 1500)`);
      assert.ok(worst < 1400, `${worst} ms`);
    });
  });

  describe("server pushback (grpc-retry-pushback-ms)", () => {
    it("a shedding instance's pushback is waited for, then the call is retried elsewhere", async () => {
      const [shedding, healthy] = await Promise.all([start("push", { ECHO_DELAY_MS: "300", MAX_IN_FLIGHT_CALLS: "1", SHED_PUSHBACK_MS: "400" }), start("push")]);
      const { client } = meshOver([shedding!, healthy!], { balancer: inOrder, breaker: false });
      // The first call occupies the shedding instance; the second is refused with pushback 400.
      const first = timed(() => client.echo({ message: "occupy" }));
      await sleep(50);
      const second = await timed(() => client.echo({ message: "refused, then retried" }));
      assert.equal((await first).value.instanceId, shedding!.instanceId);
      console.log(`      refused with pushback 400 ms, answered by the other instance after ${second.ms.toFixed(0)} ms`);
      assert.equal(second.value.instanceId, healthy!.instanceId);
      assert.ok(second.ms >= 390, `retried after ${second.ms} ms, before the pushback`);
    });

    it("a negative pushback means do not retry", async () => {
      const [shedding, healthy] = await Promise.all([start("nopush", { ECHO_DELAY_MS: "300", MAX_IN_FLIGHT_CALLS: "1", SHED_PUSHBACK_MS: "-1" }), start("nopush")]);
      const { client } = meshOver([shedding!, healthy!], { balancer: inOrder, breaker: false });
      const first = client.echo({ message: "occupy" });
      await sleep(50);
      await assert.rejects(client.echo({ message: "refused" }), (error) => codeOf(error) === "ResourceExhausted" && /overloaded/.test(String(error)));
      await first;
    });
  });

  describe("slow start", () => {
    it("a newly joined instance starts at a small share of traffic and ramps up over the window", async () => {
      const [old, fresh] = await Promise.all([start("slowstart"), start("slowstart")]);
      const { client, resolver } = meshOver([old!], { balancer: "round_robin", slowStart: { windowMs: 3000, minWeightPercent: 10 } });
      await client.echo({ message: "warm" });
      resolver.set([{ id: old!.instanceId, port: old!.port }, { id: fresh!.instanceId, port: fresh!.port }]);
      const share = async (calls: number) => {
        let toFresh = 0;
        for (let i = 0; i < calls; i++) if ((await client.echo({ message: "x" })).instanceId === fresh!.instanceId) toFresh++;
        return toFresh / calls;
      };
      const early = await share(100);
      await sleep(3200);
      const settled = await share(100);
      console.log(`      share of the new instance: ${(early * 100).toFixed(0)}% just after it joined, ${(settled * 100).toFixed(0)}% after the 3 s window`);
      assert.ok(early < 0.25, `early share ${early}`);
      assert.ok(settled > 0.4, `settled share ${settled}`);
    });
  });

  describe("classifier overrides and interceptors", () => {
    let failing: ServiceProcess;
    let healthy: ServiceProcess;
    before(async () => {
      [failing, healthy] = await Promise.all([start("cls", { ECHO_FAULT_SIGNALS: "1" }), start("cls")]);
      failing.signal("SIGUSR1");
      await sleep(300);
    });

    it("a per-call classifier can declare an error the caller's: no retry, no breaker", async () => {
      const { client } = meshOver([failing, healthy], { balancer: inOrder, breaker: { consecutiveFailures: 1, volumeThreshold: 1 } });
      const callersFault = () => "caller_fault" as const;
      await assert.rejects(client.echo({ message: "x" }, { contextValues: createContextValues().set(outcomeClassifierKey, callersFault) }), (error) => codeOf(error) === "Unavailable");
      // Classified normally, the same failure is retried on the healthy instance.
      assert.equal((await client.echo({ message: "x" })).instanceId, healthy.instanceId);
    });

    it("a per-method classifier applies to that method only", async () => {
      const { client } = meshOver([failing, healthy], { balancer: inOrder, methods: { Echo: { classifier: () => "caller_fault" } } });
      await assert.rejects(client.echo({ message: "x" }), (error) => codeOf(error) === "Unavailable");
    });

    it("call interceptors see one call, attempt interceptors every attempt", async () => {
      const seen = { calls: 0, attempts: 0 };
      const countCalls: Interceptor = (next) => (request) => {
        seen.calls++;
        return next(request);
      };
      const countAttempts: Interceptor = (next) => (request) => {
        seen.attempts++;
        return next(request);
      };
      const { client } = meshOver([failing, healthy], { balancer: inOrder, callInterceptors: [countCalls], interceptors: [countAttempts], retry: { backoff: { baseMs: 1, maxMs: 2 } } });
      assert.equal((await client.echo({ message: "x" })).instanceId, healthy.instanceId);
      assert.deepEqual(seen, { calls: 1, attempts: 2 });
      const parts = [];
      for await (const part of client.echoStream({ message: "s", count: 2 })) parts.push(part);
      // The stream's first attempt fails before its first message, and is retried like a unary call.
      assert.deepEqual(parts.map((p) => p.instanceId), [healthy.instanceId, healthy.instanceId]);
      assert.deepEqual(seen, { calls: 2, attempts: 4 });
    });
  });
});
