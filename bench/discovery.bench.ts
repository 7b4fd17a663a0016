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
 * Run: make bench-discovery   (or: source scripts/lib.sh && node --import tsx bench/discovery.bench.ts)
 * Env: BENCH_ROUNDS (default 25; each round makes 4 changes), BENCH_PROCESS_ROUNDS (default 3).
 */
import http from "node:http";
import os from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import { Registry } from "prom-client";
import { createMeshTransport, type MeshTransport } from "../src/client/index.js";
import { createConsulClient } from "../src/platform/consul.js";
import { consul, consulAddress, eventually } from "../test/support/infra.js";
import { percentile } from "../test/support/load.js";
import { killProcess, startServiceProcess, type ServiceProcess } from "../test/support/service-process.js";

const rounds = Number(process.env.BENCH_ROUNDS ?? 25);
const processRounds = Number(process.env.BENCH_PROCESS_ROUNDS ?? 3);
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

async function main() {
  const observers = [new Observer("baseline: bare blocking query"), new Observer("mesh (default, 100 ms floor)"), new Observer("mesh (floor 0)")];
  await eventually("Consul", async () => ((await consul.status.leader()) ? true : undefined));
  const synthetic = await syntheticChanges(observers);
  const real = processRounds > 0 ? await processChanges() : undefined;

  console.log(`\ndiscovery convergence: ${rounds} rounds of 4 changes, pauses 0-300 ms, Consul ${consulUrl}`);
  console.log(`machine: ${os.cpus().length} x ${os.cpus()[0]?.model ?? "cpu"}, node ${process.version}\n`);
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
  if (real) {
    console.log(`\nEnd to end with Consul's own gRPC check (interval 1 s), mesh client defaults, ${processRounds} rounds:\n`);
    console.log("| event | p50 | max |");
    console.log("|---|---|---|");
    console.log(`| instance SIGKILLed -> dropped from picks | ${ms(percentile(real.killed, 50))} | ${ms(Math.max(...real.killed))} |`);
    console.log(`| process spawned -> in picks (start + first check) | ${ms(percentile(real.started, 50))} | ${ms(Math.max(...real.started))} |`);
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
