import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Registry } from "prom-client";
import { EchoService } from "../../gen/meshkit/echo/v1/echo_pb.js";
import { consulResolver, createMeshTransport, registerBalancer, type MeshEvent, type MeshTransport, type MeshTransportOptions } from "../../src/client/index.js";
import { consul, eventually } from "../support/infra.js";
import { mutableResolver } from "../support/mutable-resolver.js";
import { killProcess, startServiceProcess, type ServiceProcess } from "../support/service-process.js";

/**
 * The defects of issue 11, each through the transport's public API against real echo processes.
 * Instances come from a resolver the test controls (the processes are real and registered in
 * Consul, but a fixed set keeps each case deterministic); the Consul watch has its own cases.
 */
describe("mesh client resilience: the defects of issue 11", function () {
  this.timeout(90_000);
  const run = randomUUID().slice(0, 8);
  const processes: ServiceProcess[] = [];
  const transports: MeshTransport[] = [];

  const start = async (name: string, env: Record<string, string> = {}) => {
    const started = await startServiceProcess("src/reference/services/echo/main.ts", { SERVICE_NAME: `echo-res-${name}-${run}`, CONSUL_CHECK_INTERVAL: "5s", ...env });
    processes.push(started);
    return started;
  };
  const meshOver = (instances: ServiceProcess[], options: Partial<MeshTransportOptions> = {}) => {
    const events: MeshEvent[] = [];
    const resolver = mutableResolver(instances.map((i) => ({ id: i.instanceId, port: i.port })));
    const transport = createMeshTransport({ service: `echo-res-${run}`, resolver, metrics: new Registry(), onEvent: (event) => events.push(event), ...options });
    transports.push(transport);
    const breakerEvents = (instance: ServiceProcess, state: string) => events.filter((e) => e.type === "breaker" && e.instance === instance.instanceId && e.state === state).length;
    return { transport, resolver, events, breakerEvents, client: createClient(EchoService, transport) };
  };
  const codeOf = (error: unknown) => Code[ConnectError.from(error).code];
  // Picks in list order, the first not tried yet: a test decides which instance a call meets first.
  const inOrder = "in-order-for-tests";
  // Registered only while this suite runs: a balancer left registered would leak into other suites.
  let unregisterInOrder = () => {};
  before(() => {
    unregisterInOrder = registerBalancer(inOrder, () => ({ name: inOrder, picker: (endpoints) => ({ pick: (exclude) => endpoints.find((e) => !exclude?.has(e)) }) }));
  });
  after(() => unregisterInOrder());

  after(async () => {
    for (const transport of transports) transport.close();
    await Promise.all(processes.map(killProcess));
  });

  it("1. requests too large for the server (the caller's fault) leave healthy instances in play", async () => {
    const healthy = await Promise.all([start("big"), start("big")]);
    // Over the 4 MiB limit (the client's, the same as the server's): RESOURCE_EXHAUSTED before
    // the request leaves. (Sent anyway, with a larger client limit, the server's refusal is not
    // seen before the attempt timeout: the server answers without reading the body, and the
    // client's write stalls on flow control.)
    const metrics = new Registry();
    const { transport, client, breakerEvents } = meshOver(healthy, {
      balancer: "round_robin",
      breaker: { volumeThreshold: 5, consecutiveFailures: 5, resetTimeoutMs: 60_000 },
      metrics,
    });
    // Every instance's breaker, as the transport holds it and as its gauge exports it (0 = closed).
    const breakerStates = async () => {
      const gauge = (await metrics.getSingleMetric("meshkit_client_breaker_state")!.get()).values;
      return healthy.map((instance) => ({
        instance: instance.instanceId,
        state: transport.endpoints.find((endpoint) => endpoint.instance.id === instance.instanceId)?.breakerState,
        gauge: gauge.find((value) => value.labels.instance === instance.instanceId)?.value,
      }));
    };
    const allClosed = healthy.map((instance) => ({ instance: instance.instanceId, state: "closed", gauge: 0 }));
    assert.deepEqual(await breakerStates(), allClosed);
    const big = "x".repeat(5 * 1024 * 1024);
    for (let i = 0; i < 20; i++) {
      await assert.rejects(client.echo({ message: big }), (error) => codeOf(error) === "ResourceExhausted");
    }
    // 20 refusals, 10 on each instance, twice the 5 consecutive failures that would open a breaker.
    assert.deepEqual(await breakerStates(), allClosed, "the caller's refused requests changed a breaker's state");
    const codes: string[] = [];
    for (let i = 0; i < 10; i++) codes.push(await client.echo({ message: "small" }).then(() => "OK", codeOf));
    assert.deepEqual(codes, Array(10).fill("OK"));
    assert.deepEqual(await breakerStates(), allClosed);
    for (const instance of healthy) assert.equal(breakerEvents(instance, "open"), 0, `${instance.instanceId}'s breaker opened`);
  });

  it("2. a half-open instance takes one probe; every other call goes to the healthy one", async () => {
    const [hung, healthy] = await Promise.all([start("half", { ECHO_DELAY_MS: "60000" }), start("half")]);
    const { client, events, breakerEvents } = meshOver([hung!, healthy!], {
      balancer: "round_robin",
      retry: false,
      attemptTimeoutMs: 300,
      breaker: { consecutiveFailures: 2, volumeThreshold: 100, resetTimeoutMs: 500 },
    });
    await eventually("the hung instance's breaker to open", async () => {
      await client.echo({ message: "x" }).catch(() => undefined);
      return breakerEvents(hung!, "open") > 0 ? true : undefined;
    });
    await eventually("half-open", async () => (breakerEvents(hung!, "half_open") > 0 ? true : undefined), { timeoutMs: 5000, intervalMs: 20 });
    const before = events.length;
    const outcomes = await Promise.all(Array.from({ length: 20 }, () => client.echo({ message: "y" }).then(() => "OK", codeOf)));
    const failed = outcomes.filter((o) => o !== "OK");
    console.log(`      20 concurrent calls while half-open: ${failed.length} failed (${failed.join(", ")}); events ${JSON.stringify(events.slice(before).map((e) => (e.type === "breaker" ? e.state : e.type)))}`);
    // At most the one probe sent to the hung instance fails (retry is off).
    assert.ok(failed.length <= 1, `${failed.length} of 20 failed`);
  });

  it("3. a probe cancelled by its caller does not close the half-open breaker", async () => {
    const hung = await start("cancel", { ECHO_DELAY_MS: "60000" });
    const { client, breakerEvents } = meshOver([hung], {
      retry: false,
      attemptTimeoutMs: 200,
      breaker: { consecutiveFailures: 2, volumeThreshold: 100, resetTimeoutMs: 300 },
    });
    for (let i = 0; i < 2; i++) await assert.rejects(client.echo({ message: "x" }), (error) => codeOf(error) === "DeadlineExceeded");
    assert.equal(breakerEvents(hung, "open"), 1);
    await eventually("half-open", async () => (breakerEvents(hung, "half_open") > 0 ? true : undefined), { timeoutMs: 5000, intervalMs: 20 });
    const caller = new AbortController();
    setTimeout(() => caller.abort(), 50);
    await assert.rejects(client.echo({ message: "probe" }, { signal: caller.signal }), (error) => codeOf(error) === "Canceled");
    await sleep(100);
    assert.equal(breakerEvents(hung, "closed"), 0, "a cancelled probe closed the breaker of a hung instance");
  });

  it("4. a caller's tight deadline is not held against the instance", async () => {
    const slow = await start("deadline", { ECHO_DELAY_MS: "200" });
    const { client, breakerEvents } = meshOver([slow], { breaker: { consecutiveFailures: 3, volumeThreshold: 3, resetTimeoutMs: 60_000 } });
    for (let i = 0; i < 8; i++) await assert.rejects(client.echo({ message: "hurry" }, { timeoutMs: 50 }), (error) => codeOf(error) === "DeadlineExceeded");
    assert.equal(breakerEvents(slow, "open"), 0, "the caller's deadlines opened a healthy instance's breaker");
    assert.equal((await client.echo({ message: "patient" }, { timeoutMs: 5000 })).instanceId, slow.instanceId);
  });

  it("5a. a retried stream open keeps the caller's deadline", async () => {
    // Both instances hang before their first message; the one picked first crashes 300 ms into
    // the call, so the open is retried on the other, which must be told what is left of the
    // caller's 1 s, not 1 s again.
    const [crashing, hung] = await Promise.all([start("sdl", { ECHO_DELAY_MS: "60000" }), start("sdl", { ECHO_DELAY_MS: "60000" })]);
    const { client } = meshOver([crashing!, hung!], { balancer: inOrder, breaker: false, retry: { maxAttempts: 2, backoff: { baseMs: 1, maxMs: 2 } } });
    const started = performance.now();
    setTimeout(() => crashing!.signal("SIGKILL"), 300);
    const outcome = await (async () => {
      for await (const part of client.echoStream({ message: "s", count: 3 }, { timeoutMs: 1000 })) void part;
      return "ended";
    })().catch(codeOf);
    const took = performance.now() - started;
    console.log(`      a stream with a 1000 ms deadline, retried after its instance crashed at 300 ms: ${outcome} after ${took.toFixed(0)} ms`);
    assert.equal(await crashing!.exited, "SIGKILL");
    assert.equal(outcome, "DeadlineExceeded");
    assert.ok(took < 1150, `the retried stream ran ${took.toFixed(0)} ms past a 1000 ms deadline`);
  });

  it("5b. opening a stream is bounded when the caller gives no deadline", async () => {
    const hung = await start("sopen", { ECHO_DELAY_MS: "60000" });
    const { client } = meshOver([hung], { retry: false, breaker: false, attemptTimeoutMs: 300 });
    const started = performance.now();
    const opened = (async () => {
      for await (const part of client.echoStream({ message: "s", count: 3 })) void part;
      return "ended";
    })().catch(codeOf);
    const outcome = await Promise.race([opened, sleep(3000, "still opening after 3 s")]);
    console.log(`      stream open on a hung instance: ${outcome} after ${Math.round(performance.now() - started)} ms`);
    assert.equal(outcome, "DeadlineExceeded");
  });

  it("5c. a stream the caller stops reading is released on cancel and on close", async () => {
    const healthy = await start("unread");
    const { transport, client } = meshOver([healthy], { retry: false });
    const outstanding = () => transport.endpoints.reduce((sum, e) => sum + e.load.outstanding, 0);

    const caller = new AbortController();
    const stream = client.echoStream({ message: "s", count: 1000 }, { signal: caller.signal })[Symbol.asyncIterator]();
    assert.equal((await stream.next()).value?.sequence, 1);
    assert.equal(outstanding(), 1);
    caller.abort();
    await eventually("the cancelled stream to be released", async () => (outstanding() === 0 ? true : undefined), { timeoutMs: 3000, intervalMs: 20 });

    const second = client.echoStream({ message: "s", count: 1000 })[Symbol.asyncIterator]();
    assert.equal((await second.next()).value?.sequence, 1);
    const endpoints = transport.endpoints;
    transport.close();
    await eventually("close to release the unread stream", async () => (endpoints.every((e) => e.load.outstanding === 0) ? true : undefined), { timeoutMs: 3000, intervalMs: 20 });
  });

  it("6. series of an instance that left are removed; closing one of two transports keeps the other's staleness", async () => {
    const [a, b] = await Promise.all([start("metrics"), start("metrics")]);
    const registry = new Registry();
    const { client, resolver } = meshOver([a!, b!], { balancer: "round_robin", metrics: registry });
    for (let i = 0; i < 10; i++) await client.echo({ message: "x" });
    assert.ok((await registry.metrics()).includes(a!.instanceId));
    resolver.set([{ id: b!.instanceId, port: b!.port }]);
    const text = await registry.metrics();
    const left = text.split("\n").filter((line) => line.includes(a!.instanceId));
    assert.deepEqual(left, [], "series of the instance that left are still exported");

    const service = `echo-res-stale-${run}`;
    const first = createMeshTransport({ service, consul, metrics: registry });
    const second = createMeshTransport({ service, consul, metrics: registry });
    transports.push(second);
    first.close();
    const staleness = (await registry.metrics()).split("\n").filter((line) => line.startsWith("meshkit_resolver_staleness_seconds{") && line.includes(service));
    assert.equal(staleness.length, 1, "closing one transport removed the other's staleness gauge");
  });

  it("7a. a shared Consul watch follows each caller's own options", async () => {
    const service = `echo-res-watch-${run}`;
    const ids = [`${service}-1`, `${service}-2`];
    try {
      await consul.agent.service.register({ name: service, id: ids[0]!, address: "127.0.0.1", port: 1 });
      const lazy = createMeshTransport({ service, consul, metrics: false, minQueryIntervalMs: 8000 });
      transports.push(lazy);
      await eventually("the first transport's answer", async () => (lazy.endpoints.length === 1 ? true : undefined));
      const eager = createMeshTransport({ service, consul, metrics: false, minQueryIntervalMs: 100 });
      transports.push(eager);
      await eventually("the second transport's answer", async () => (eager.endpoints.length === 1 ? true : undefined));
      await sleep(300);
      const registered = performance.now();
      await consul.agent.service.register({ name: service, id: ids[1]!, address: "127.0.0.1", port: 2 });
      await eventually("the eager transport to see the new instance", async () => (eager.endpoints.length === 2 ? true : undefined), { timeoutMs: 10_000, intervalMs: 20 });
      const lag = performance.now() - registered;
      console.log(`      a transport asking for a 100 ms query floor saw a new instance after ${lag.toFixed(0)} ms (the other asked for 8 s)`);
      assert.ok(lag < 2000, `took ${lag.toFixed(0)} ms: the watch kept the first caller's 8 s floor`);
    } finally {
      for (const id of ids) await consul.agent.service.deregister(id).catch(() => undefined);
    }
  });

  it("7b. close() leaves alone a resolver the caller passed in", async () => {
    const service = `echo-res-owned-${run}`;
    const ids = [`${service}-1`, `${service}-2`];
    const resolver = consulResolver(consul, { service });
    try {
      await consul.agent.service.register({ name: service, id: ids[0]!, address: "127.0.0.1", port: 1 });
      const transport = createMeshTransport({ service, resolver, metrics: false });
      await eventually("the first instance", async () => (transport.endpoints.length === 1 ? true : undefined));
      transport.close();
      await consul.agent.service.register({ name: service, id: ids[1]!, address: "127.0.0.1", port: 2 });
      await eventually("the caller's resolver to keep watching", async () => (resolver.instances.length === 2 ? true : undefined), { timeoutMs: 10_000 });
    } finally {
      resolver.close();
      for (const id of ids) await consul.agent.service.deregister(id).catch(() => undefined);
    }
  });

  it("8. when every instance fails at once, the ejection cap keeps most in play, so calls recover as soon as they heal", async () => {
    const all = await Promise.all([1, 2, 3].map(() => start("cap", { ECHO_FAULT_SIGNALS: "1" })));
    const direct = (instance: ServiceProcess) => createClient(EchoService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${instance.port}` }));
    const { client, breakerEvents } = meshOver(all, {
      balancer: "round_robin",
      breaker: { consecutiveFailures: 2, volumeThreshold: 100, resetTimeoutMs: 60_000 },
      retry: { maxAttempts: 3, backoff: { baseMs: 1, maxMs: 2 } },
    });
    for (const instance of all) instance.signal("SIGUSR1");
    for (const instance of all) await eventually("failing", () => direct(instance).echo({ message: "p" }).then(() => undefined, () => true));
    for (let i = 0; i < 15; i++) await client.echo({ message: "doomed" }).catch(() => undefined);
    console.log(`      breakers opened: ${all.map((i) => breakerEvents(i, "open")).join(", ")}`);
    for (const instance of all) instance.signal("SIGUSR2");
    for (const instance of all) await eventually("healed", () => direct(instance).echo({ message: "p" }).then(() => true, () => undefined));
    const codes: string[] = [];
    for (let i = 0; i < 10; i++) codes.push(await client.echo({ message: "healed" }).then(() => "OK", codeOf));
    assert.deepEqual(codes, Array(10).fill("OK"));
  });
});
