/**
 * Discovery convergence: how long after a change in Consul the mesh client's picks reflect it.
 *
 * Part 1, the client's share, at sub-millisecond resolution. Synthetic instances with TTL checks
 * are registered in the real Consul, and the bench itself turns checks critical and passing,
 * registers a new instance and deregisters it. The clock starts when the request that makes the
 * change is sent and stops when the observer's set reflects it, for three observers watching the
 * same changes at the same time:
 *   - baseline: a bare blocking-query loop (node:http, kept-alive connection, no floor between
 *     queries, ids only): about the least any Consul watcher can take, since Consul itself must
 *     commit the change and answer;
 *   - mesh (default): createMeshTransport with its default 100 ms floor between queries;
 *   - mesh (floor 0): the same with `minQueryIntervalMs: 0`.
 * For the mesh transports the stop is the "instances" event, which the transport emits after it
 * has rebuilt its picker: from then on no pick returns an instance the change removed.
 * Pauses between changes are drawn from 0 to 300 ms, so some changes land inside the floor.
 *
 * Part 2, end to end with Consul's own gRPC check: a real echo process, check interval 1 s,
 * SIGKILLed at a random point of the check's cycle (time until the picks drop it), and a new process started (time from the spawn until
 * the picks include it, which includes the process start and Consul's first check).
 *
 * Part 3, scale (issue 23): a private Consul agent started here (never the shared one), N
 * instances of one service registered through the catalog (one check each), and one check
 * flipped critical / passing every 150 ms. The mesh client runs in a process of its own
 * (bench/support/discovery-client.ts), so that its CPU time is the client's alone. Per row:
 * client CPU per change (CPU over the changes' window minus the process's rate in a window
 * without changes, divided by the changes), the agent's the same way from /proc/<pid>/stat,
 * change-to-pick p50/p99 (the flip request sent -> the transport's "instances" event), heap and
 * RSS per instance (after a full GC, before and after the transport resolved), with and without
 * `?cached`, and with 4 transports on one Consul client at 1,000.
 *
 * Run: make bench-discovery   (or: source scripts/lib.sh && node --import tsx bench/discovery.bench.ts)
 * Env: BENCH_ROUNDS (default 25; each round makes 4 changes), BENCH_PROCESS_ROUNDS (default 3),
 * BENCH_PARTS (default "convergence,process,scale"), BENCH_SCALE_SIZES (default 10,1000,10000),
 * BENCH_SCALE_CHANGES (default 200 per row: the p99 is then the third-worst change, not the
 * worst), BENCH_CLIENT_PROF (a folder: CPU profiles of the client over each row's changes).
 */
import { fork, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import http from "node:http";
import os from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import path from "node:path";
import { Registry } from "prom-client";
import { createMeshTransport, type MeshTransport } from "../src/client/index.js";
import { createConsulClient } from "../src/platform/consul.js";
import { consul, consulAddress, eventually } from "../test/support/infra.js";
import { percentile } from "../test/support/load.js";
import { startPrivateConsul, type PrivateConsul } from "../test/support/private-consul.js";
import { compileForBench, compiledRoot } from "./support/compiled.js";
import { killProcess, startServiceProcess, type ServiceProcess } from "../test/support/service-process.js";

const rounds = Number(process.env.BENCH_ROUNDS ?? 25);
const processRounds = Number(process.env.BENCH_PROCESS_ROUNDS ?? 3);
const parts = new Set((process.env.BENCH_PARTS ?? "convergence,process,scale").split(","));
const consulUrl = `http://${consulAddress.host}:${consulAddress.port}`;

/** An observer holds the set of instance ids it last saw and wakes whoever waits on a condition. */
class Observer {
  ids = new Set<string>();
  #waiters: { until: (ids: Set<string>) => boolean; resolve: (at: number) => void }[] = [];

  constructor(readonly name: string) {}

  update(ids: Iterable<string>): void {
    const at = performance.now();
    this.ids = new Set(ids);
    this.#waiters = this.#waiters.filter((waiter) => {
      if (!waiter.until(this.ids)) return true;
      waiter.resolve(at);
      return false;
    });
  }

  /** The time at which `until` first holds (now, if it already does). */
  when(until: (ids: Set<string>) => boolean, timeoutMs = 20_000): Promise<number> {
    if (until(this.ids)) return Promise.resolve(performance.now());
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.name}: no change within ${timeoutMs} ms`)), timeoutMs);
      this.#waiters.push({ until, resolve: (at) => (clearTimeout(timer), resolve(at)) });
    });
  }
}

/**
 * The baseline: Consul's blocking query in a bare loop on node:http with a kept-alive connection,
 * nothing between an answer and the next ask, nothing parsed but the ids.
 */
function bareWatch(service: string, observer: Observer): { stop: () => void } {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  let stopped = false;
  let current: http.ClientRequest | undefined;
  const ask = (index: string) => {
    if (stopped) return;
    current = http.get(`${consulUrl}/v1/health/service/${service}?passing=1&index=${index}&wait=30s`, { agent }, (response) => {
      const chunks: Buffer[] = [];
      response.on("data", (chunk: Buffer) => chunks.push(chunk));
      response.on("end", () => {
        const entries = JSON.parse(Buffer.concat(chunks).toString()) as { Service: { ID: string } }[];
        observer.update(entries.map((entry) => entry.Service.ID));
        ask(String(response.headers["x-consul-index"] ?? "0"));
      });
    });
    current.on("error", () => setTimeout(() => ask("0"), 50));
  };
  ask("0");
  return {
    stop: () => {
      stopped = true;
      current?.destroy();
      agent.destroy();
    },
  };
}

function watchMesh(service: string, observer: Observer, minQueryIntervalMs?: number): MeshTransport {
  // A Consul client of its own: watches are shared per client and selection, and this one must
  // run its own loop with its own floor.
  return createMeshTransport({
    service,
    consul: createConsulClient(consulAddress),
    ...(minQueryIntervalMs === undefined ? {} : { minQueryIntervalMs }),
    metrics: new Registry(),
    onEvent: (event) => {
      if (event.type === "instances") observer.update(event.instances.map((instance) => instance.id));
    },
  });
}

async function agent(method: "PUT", path: string, body?: unknown): Promise<void> {
  const response = await fetch(`${consulUrl}${path}`, { method, ...(body ? { body: JSON.stringify(body) } : {}) });
  if (!response.ok) throw new Error(`${path}: ${response.status} ${await response.text()}`);
}

const registerTtlInstance = (service: string, id: string, port: number) =>
  agent("PUT", "/v1/agent/service/register", {
    Name: service,
    ID: id,
    Address: "127.0.0.1",
    Port: port,
    Check: { CheckID: `ttl:${id}`, TTL: "10m", Status: "passing", DeregisterCriticalServiceAfter: "10m" },
  });

type Event = "check critical" | "check passing" | "instance registered" | "instance deregistered";
const events: Event[] = ["check critical", "check passing", "instance registered", "instance deregistered"];

async function syntheticChanges(observers: Observer[]): Promise<Map<Event, Map<string, number[]>>> {
  const service = `discovery-bench-${process.pid}`;
  const base = [1, 2, 3].map((n) => `${service}-${n}`);
  const samples = new Map(events.map((event) => [event, new Map(observers.map((observer) => [observer.name, [] as number[]]))]));
  await Promise.all(base.map((id, n) => registerTtlInstance(service, id, 20_000 + n)));
  const stops: (() => void)[] = [];
  try {
    const bare = bareWatch(service, observers[0]!);
    const meshDefault = watchMesh(service, observers[1]!);
    const meshNoFloor = watchMesh(service, observers[2]!, 0);
    stops.push(bare.stop, () => meshDefault.close(), () => meshNoFloor.close());
    await Promise.all(observers.map((observer) => observer.when((ids) => base.every((id) => ids.has(id)))));

    // One change: start the clock, send it, and wait for every observer to see `reflected`.
    const change = async (event: Event, send: () => Promise<void>, reflected: (ids: Set<string>) => boolean) => {
      await sleep(Math.random() * 300);
      const sentAt = performance.now();
      const seen = Promise.all(observers.map((observer) => observer.when(reflected)));
      await send();
      const at = await seen;
      observers.forEach((observer, n) => samples.get(event)!.get(observer.name)!.push(at[n]! - sentAt));
    };
    for (let round = 0; round < rounds; round++) {
      const victim = base[round % base.length]!;
      const newcomer = `${service}-new-${round}`;
      await change("check critical", () => agent("PUT", `/v1/agent/check/fail/ttl:${victim}`), (ids) => !ids.has(victim));
      await change("check passing", () => agent("PUT", `/v1/agent/check/pass/ttl:${victim}`), (ids) => ids.has(victim));
      await change("instance registered", () => registerTtlInstance(service, newcomer, 21_000 + round), (ids) => ids.has(newcomer));
      await change("instance deregistered", () => agent("PUT", `/v1/agent/service/deregister/${newcomer}`), (ids) => !ids.has(newcomer));
    }
  } finally {
    for (const stop of stops) stop();
    await Promise.all(base.map((id) => agent("PUT", `/v1/agent/service/deregister/${id}`).catch(() => undefined)));
  }
  return samples;
}

async function processChanges(): Promise<{ killed: number[]; started: number[] }> {
  const service = `discovery-bench-echo-${process.pid}`;
  const env = { SERVICE_NAME: service, CONSUL_CHECK_INTERVAL: "1s", OTEL_TRACES_SAMPLER: "always_off" };
  const observer = new Observer("mesh (default)");
  const transport = watchMesh(service, observer);
  const killed: number[] = [];
  const started: number[] = [];
  let instance: ServiceProcess | undefined = await startServiceProcess("src/reference/services/echo/main.ts", env);
  try {
    await observer.when((ids) => ids.has(instance!.instanceId));
    for (let round = 0; round < processRounds; round++) {
      const victim: ServiceProcess = instance!;
      // At a random point of the check's 1 s cycle, not right after the check that admitted it.
      await sleep(Math.random() * 1000);
      const killedAt = performance.now();
      victim.signal("SIGKILL");
      killed.push((await observer.when((ids) => !ids.has(victim.instanceId))) - killedAt);
      await consul.agent.service.deregister(victim.instanceId);
      const spawnedAt = performance.now();
      instance = await startServiceProcess("src/reference/services/echo/main.ts", env);
      const id = instance.instanceId;
      started.push((await observer.when((ids) => ids.has(id))) - spawnedAt);
    }
  } finally {
    transport.close();
    await killProcess(instance);
  }
  return { killed, started };
}

const ms = (value: number) => `${value.toFixed(1)} ms`;

// ---------------------------------------------------------------------------------------------
// Part 3: scale. A private Consul agent (never the shared one), N instances of one service, one
// check flipped every 150 ms; the mesh client in a process of its own.

interface ScaleRow {
  instances: number;
  mode: string;
  clients: number;
  changes: number;
  clientCpuMs: number;
  agentCpuMs: number;
  p50: number;
  p99: number;
  bytesPerInstance?: { heap: number; rss: number };
  backend: string;
}

const scaleSizes = (process.env.BENCH_SCALE_SIZES ?? "10,1000,10000").split(",").filter(Boolean).map(Number);
const scaleChanges = Number(process.env.BENCH_SCALE_CHANGES ?? 200);
const flipIntervalMs = 150;
const clockTicks = 100; // USER_HZ on Linux: /proc/<pid>/stat counts CPU time in 1/100 s

/** CPU time of a process, user + system, in ms, from /proc/<pid>/stat. */
function processCpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / clockTicks;
}

type ClientMessage =
  | { type: "ready" }
  | { type: "instances"; client: number; at: number; count: number; up: boolean }
  | { type: "cpu"; cpuUs: number }
  | { type: "memory"; heapUsed: number; rss: number }
  | { type: "profiled" };

/** The mesh client process (bench/support/discovery-client.ts) and a way to await its messages. */
class ClientProcess {
  readonly child: ChildProcess;
  #waiters: { match: (message: ClientMessage) => boolean; resolve: (message: ClientMessage) => void }[] = [];
  /** The last "up" state each client reported. */
  up = new Map<number, boolean>();

  constructor(env: Record<string, string>) {
    // Compiled (scalePart compiles it), as users run the client: tsx's loader would add its own
    // megabytes to the heap that every full collection walks.
    this.child = fork(path.join(compiledRoot, "bench/support/discovery-client.js"), [], {
      execArgv: ["--expose-gc", ...(process.env.BENCH_CLIENT_NODE_ARGS ?? "").split(" ").filter(Boolean)],
      env: { ...process.env, ...env },
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    this.child.on("message", (message: ClientMessage) => {
      if (message.type === "instances") this.up.set(message.client, message.up);
      this.#waiters = this.#waiters.filter((waiter) => {
        if (!waiter.match(message)) return true;
        waiter.resolve(message);
        return false;
      });
    });
  }

  next<T extends ClientMessage>(match: (message: ClientMessage) => boolean, timeoutMs = 60_000): Promise<T> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`client: no matching message within ${timeoutMs} ms`)), timeoutMs);
      this.#waiters.push({ match, resolve: (message) => (clearTimeout(timer), resolve(message as T)) });
    });
  }

  /** Asks for `type` ("cpu", "memory", "profile-stop" -> "profiled") and awaits the answer. */
  async ask<T extends ClientMessage["type"]>(type: string, answer: T): Promise<ClientMessage & { type: T }> {
    const reply = this.next<ClientMessage & { type: T }>((message) => message.type === answer);
    this.child.send({ type });
    return reply;
  }

  async close(): Promise<void> {
    const exited = once(this.child, "exit");
    this.child.send({ type: "close" });
    await Promise.race([exited, sleep(5000).then(() => this.child.kill("SIGKILL"))]);
  }
}

/**
 * `fetch` to the private agent, sent once more when the connection fails: the agent may close a
 * kept-alive connection just as the next request goes out ("other side closed"), which says
 * nothing about what is measured. (Every request here may be repeated: catalog registrations
 * are idempotent.)
 */
async function agentFetch(url: string, init?: RequestInit): Promise<Response> {
  try {
    return await fetch(url, init);
  } catch {
    return fetch(url, init);
  }
}

async function registerScaleService(base: string, service: string, count: number): Promise<void> {
  const node = `${service}-node`;
  const put = async (body: unknown) => {
    const response = await agentFetch(`${base}/v1/catalog/register`, { method: "PUT", body: JSON.stringify(body) });
    if (!response.ok) throw new Error(`catalog register: ${response.status} ${await response.text()}`);
  };
  await put({ Node: node, Address: "127.0.0.1" });
  const batch = 64;
  for (let start = 0; start < count; start += batch) {
    await Promise.all(
      Array.from({ length: Math.min(batch, count - start) }, (_, i) => {
        const n = start + i;
        const id = `${service}-${n}`;
        return put({
          Node: node,
          Address: "127.0.0.1",
          SkipNodeUpdate: true,
          Service: { ID: id, Service: service, Address: `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`, Port: 20_000 + (n % 10_000), Tags: ["v1", "bench"], Meta: { version: "1.0.0", zone: `z${n % 3}` } },
          Check: { CheckID: `service:${id}`, Name: `Service '${service}' check`, ServiceID: id, Status: "passing", Output: "ok" },
        });
      }),
    );
  }
}

async function flipCheck(base: string, service: string, n: number, status: "passing" | "critical"): Promise<void> {
  const id = `${service}-${n}`;
  const response = await agentFetch(`${base}/v1/catalog/register`, {
    method: "PUT",
    body: JSON.stringify({ Node: `${service}-node`, Address: "127.0.0.1", SkipNodeUpdate: true, Check: { CheckID: `service:${id}`, Name: `Service '${service}' check`, ServiceID: id, Status: status, Output: status } }),
  });
  if (!response.ok) throw new Error(`check flip: ${response.status} ${await response.text()}`);
}

async function scaleRun(agent: PrivateConsul, base: string, service: string, instances: number, mode: "default" | "cached", clients: number): Promise<ScaleRow> {
  const victim = `${service}-0`;
  const backend = (await agentFetch(`${base}/v1/health/service/${service}?passing=1&index=1&wait=1ms${mode === "cached" ? "&cached" : ""}`)).headers.get("x-consul-query-backend") ?? "(none)";
  // BENCH_CLIENT_PROF=<dir>: a CPU profile of the client over each row's changes window.
  const profileOut = process.env.BENCH_CLIENT_PROF ? `${process.env.BENCH_CLIENT_PROF}/client-${instances}-${mode}-${clients}.cpuprofile` : "";
  const client = new ClientProcess({ CONSUL_HTTP_PORT: String(agent.httpPort), SERVICE: service, CLIENTS: String(clients), CACHED: mode === "cached" ? "1" : "0", WATCHED: victim, PROFILE_OUT: profileOut });
  try {
    await client.next((message) => message.type === "ready");
    const before = await client.ask("memory", "memory");
    const resolved = Promise.all(Array.from({ length: clients }, (_, n) => client.next((message) => message.type === "instances" && message.client === n && message.count === instances)));
    client.child.send({ type: "start" });
    await resolved;
    await sleep(500);
    const after = await client.ask("memory", "memory");
    // A window without changes: what the client and the agent spend anyway (the idle watch).
    const idleMs = 2000;
    const idleStart = { client: (await client.ask("cpu", "cpu")).cpuUs, agent: processCpuMs(agent.pid!), at: performance.now() };
    await sleep(idleMs);
    const idleEnd = { client: (await client.ask("cpu", "cpu")).cpuUs, agent: processCpuMs(agent.pid!), at: performance.now() };
    const idleRate = { client: (idleEnd.client - idleStart.client) / 1000 / (idleEnd.at - idleStart.at), agent: (idleEnd.agent - idleStart.agent) / (idleEnd.at - idleStart.at) };

    const latencies: number[] = [];
    if (profileOut) client.child.send({ type: "profile-start" });
    const start = { client: (await client.ask("cpu", "cpu")).cpuUs, agent: processCpuMs(agent.pid!), at: performance.now() };
    for (let change = 0; change < scaleChanges; change++) {
      const status = change % 2 === 0 ? "critical" : "passing";
      const expectUp = status === "passing";
      const seen = Promise.all(Array.from({ length: clients }, (_, n) => client.next<ClientMessage & { type: "instances" }>((message) => message.type === "instances" && message.client === n && message.up === expectUp, 10_000)));
      const flipStart = performance.now();
      const sentAt = performance.timeOrigin + flipStart;
      await flipCheck(base, service, 0, status);
      const at = await seen;
      for (const message of at) latencies.push(message.at - sentAt);
      await sleep(Math.max(0, flipIntervalMs - (performance.now() - flipStart)));
    }
    await sleep(200); // the last change's answer handled
    const end = { client: (await client.ask("cpu", "cpu")).cpuUs, agent: processCpuMs(agent.pid!), at: performance.now() };
    if (profileOut) await client.ask("profile-stop", "profiled");
    const window = end.at - start.at;
    const clientCpuMs = ((end.client - start.client) / 1000 - idleRate.client * window) / scaleChanges;
    const agentCpuMs = (end.agent - start.agent - idleRate.agent * window) / scaleChanges;
    return {
      instances,
      mode,
      clients,
      changes: scaleChanges,
      clientCpuMs,
      agentCpuMs,
      p50: percentile(latencies, 50),
      p99: percentile(latencies, 99),
      bytesPerInstance: { heap: (after.heapUsed - before.heapUsed) / instances, rss: (after.rss - before.rss) / instances },
      backend,
    };
  } finally {
    await client.close();
  }
}

async function scalePart(): Promise<ScaleRow[]> {
  await compileForBench();
  const rows: ScaleRow[] = [];
  // A single server agent as in production; and, for the 1,000-instance comparison, one with
  // the streaming backend off, which answers health queries from its own blocking queries.
  const agents: [string, string][] = [["", ""], ["blocking-query backend", "use_streaming_backend = false"]];
  for (const [label, hcl] of agents) {
    const sizes = label ? scaleSizes.filter((size) => size === 1000) : scaleSizes;
    if (sizes.length === 0) continue;
    const agent = await startPrivateConsul(hcl || undefined, { server: true });
    const base = `http://${agent.address}`;
    try {
      for (const instances of sizes) {
        const service = `scale-${instances}`;
        const registeredAt = performance.now();
        await registerScaleService(base, service, instances);
        console.error(`scale: ${instances} instances registered in ${((performance.now() - registeredAt) / 1000).toFixed(1)} s`);
        const modes: ["default" | "cached", number][] = [["default", 1], ["cached", 1]];
        if (instances === 1000 && !label) modes.push(["default", 4]);
        for (const [mode, clients] of modes) {
          const row = await scaleRun(agent, base, service, instances, mode, clients);
          console.error(`scale: ${JSON.stringify(row)}`);
          rows.push(row);
        }
        await agentFetch(`${base}/v1/catalog/deregister`, { method: "PUT", body: JSON.stringify({ Node: `${service}-node` }) });
      }
    } finally {
      await agent.stop();
    }
  }
  return rows;
}

function printScale(rows: ScaleRow[]): void {
  const target = (row: ScaleRow) =>
    row.instances <= 10 ? { p99: 20 } : row.instances <= 1000 ? { cpu: 5, p99: 50 } : { cpu: 50 };
  console.log(`\nScale: a private Consul ${"agent"}, N instances of one service (catalog-registered, one check each), one check flipped every ${flipIntervalMs} ms, ${scaleChanges} changes per row; the mesh client in its own process.`);
  console.log("CPU per change = (CPU over the changes' window - the same process's CPU rate in a 2 s window without changes x the window) / changes; change-to-pick from sending the flip to the client's \"instances\" event (every client's).\n");
  console.log("| instances | mode | clients | agent backend | client CPU/change | agent CPU/change | change-to-pick p50 | p99 | heap/instance | RSS/instance | targets |");
  console.log("|---|---|---|---|---|---|---|---|---|---|---|");
  for (const row of rows) {
    const goal = target(row);
    const verdicts: string[] = [];
    if (goal.cpu !== undefined) verdicts.push(`CPU <= ${goal.cpu} ms: ${row.clientCpuMs <= goal.cpu ? "met" : "NOT met"}`);
    if ("p99" in goal && goal.p99 !== undefined) verdicts.push(`p99 <= ${goal.p99} ms: ${row.p99 <= goal.p99 ? "met" : "NOT met"}`);
    const kb = (bytes: number) => `${(bytes / 1024).toFixed(1)} KB`;
    console.log(
      `| ${row.instances} | ${row.mode} | ${row.clients} | ${row.backend} | ${ms(row.clientCpuMs)} | ${ms(row.agentCpuMs)} | ${ms(row.p50)} | ${ms(row.p99)} | ${row.bytesPerInstance ? kb(row.bytesPerInstance.heap) : ""} | ${row.bytesPerInstance ? kb(row.bytesPerInstance.rss) : ""} | ${verdicts.join("; ")} |`,
    );
  }
}

async function main() {
  const observers = [new Observer("baseline: bare blocking query"), new Observer("mesh (default, 100 ms floor)"), new Observer("mesh (floor 0)")];
  const scale = parts.has("scale") ? await scalePart() : undefined;
  if (parts.has("convergence") || parts.has("process")) await eventually("Consul", async () => ((await consul.status.leader()) ? true : undefined));
  const synthetic = parts.has("convergence") ? await syntheticChanges(observers) : new Map<Event, Map<string, number[]>>();
  const real = parts.has("process") && processRounds > 0 ? await processChanges() : undefined;

  console.log(`\nmachine: ${os.cpus().length} x ${os.cpus()[0]?.model ?? "cpu"}, node ${process.version}, load average ${os.loadavg().map((load) => load.toFixed(2)).join(" ")}`);
  if (synthetic.size > 0) printConvergence(synthetic, observers);
  if (real) {
    console.log(`\nEnd to end with Consul's own gRPC check (interval 1 s), mesh client defaults, ${processRounds} rounds:\n`);
    console.log("| event | p50 | max |");
    console.log("|---|---|---|");
    console.log(`| instance SIGKILLed -> dropped from picks | ${ms(percentile(real.killed, 50))} | ${ms(Math.max(...real.killed))} |`);
    console.log(`| process spawned -> in picks (start + first check) | ${ms(percentile(real.started, 50))} | ${ms(Math.max(...real.started))} |`);
  }
  if (scale) printScale(scale);
}

function printConvergence(synthetic: Map<Event, Map<string, number[]>>, observers: Observer[]): void {
  console.log(`\ndiscovery convergence: ${rounds} rounds of 4 changes, pauses 0-300 ms, Consul ${consulUrl}\n`);
  console.log("Time from sending the change to Consul until the observer's set reflects it:\n");
  console.log("| change | observer | p50 | p90 | max | p50 vs baseline |");
  console.log("|---|---|---|---|---|---|");
  for (const [event, byObserver] of synthetic) {
    const baseline = percentile(byObserver.get(observers[0]!.name)!, 50);
    for (const [name, values] of byObserver) {
      const p50 = percentile(values, 50);
      console.log(`| ${event} | ${name} | ${ms(p50)} | ${ms(percentile(values, 90))} | ${ms(Math.max(...values))} | ${(p50 / baseline).toFixed(2)} |`);
    }
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
