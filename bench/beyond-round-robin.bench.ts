/**
 * Linkerd's "Beyond Round Robin" experiment (2016) at a scale this machine holds: 11 echo
 * processes registered in the real Consul, a steady open-loop load (calls are sent on a fixed
 * schedule, whether earlier ones answered or not), callers with 1 s deadlines, and one instance
 * answering 2 s late during the middle third of each run. For each balancer, with and without
 * hedging, it prints the success rate and p50 / p99 / p99.9 latency, and the ratio of each p99.9
 * to the p99.9 of a healthy run (no slow instance) measured in the same run.
 *
 * Then the client CPU per call with hedging off and on (healthy instances, closed loop,
 * alternating rounds), as a ratio.
 *
 * The transports run with `retry: false` so that the balancer (and hedging) alone decide, as in
 * Linkerd's experiment, except one row, peak_ewma as we would configure it (attempts of 500 ms
 * that fail over, default retry budget); hedging runs use the default percentile rule (hedge
 * after the method's p95) and pay from the default retry budget.
 *
 * Run: make bench-resilience   (or: source scripts/lib.sh && node --import tsx bench/beyond-round-robin.bench.ts)
 * Env: BENCH_RATE (calls/s, default 200), BENCH_SECONDS (per configuration, default 15),
 *      BENCH_CPU_SECONDS (per CPU round, default 3), BENCH_ROUNDS (CPU rounds, default 3),
 *      BENCH_ONLY (run the baseline and only the rows whose name contains this text).
 */
import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { Registry } from "prom-client";
import { EchoService } from "../gen/meshkit/echo/v1/echo_pb.js";
import { createMeshTransport, type MeshTransportOptions } from "../src/client/index.js";
import { consul, eventually } from "../test/support/infra.js";
import { percentile, runLoad } from "../test/support/load.js";
import { killProcess, startServiceProcess, type ServiceProcess } from "../test/support/service-process.js";

const rate = Number(process.env.BENCH_RATE ?? 200);
const seconds = Number(process.env.BENCH_SECONDS ?? 15);
const cpuSeconds = Number(process.env.BENCH_CPU_SECONDS ?? 3);
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const instanceCount = 11;
const deadlineMs = 1000;
const service = `echo-brr-${process.pid}`;

interface Outcome {
  calls: number;
  failures: Map<string, number>;
  /** The first message seen per code, for the log. */
  examples: Map<string, string>;
  latenciesMs: number[];
}

/** Sends `rate` calls a second for `durationMs` on a fixed schedule; `atThird(i)` runs at each third. */
async function openLoop(call: () => Promise<unknown>, durationMs: number, atThird: (third: number) => void): Promise<Outcome> {
  const outcome: Outcome = { calls: 0, failures: new Map(), examples: new Map(), latenciesMs: [] };
  const inFlight = new Set<Promise<void>>();
  const started = performance.now();
  const interval = 1000 / rate;
  let third = 0;
  for (;;) {
    const elapsed = performance.now() - started;
    if (elapsed >= durationMs) break;
    while (third < 2 && elapsed >= ((third + 1) * durationMs) / 3) atThird(++third);
    const due = Math.floor(elapsed / interval);
    while (outcome.calls < due) {
      outcome.calls++;
      const sent = performance.now();
      const done: Promise<void> = call().then(
        () => void outcome.latenciesMs.push(performance.now() - sent),
        (error: unknown) => {
          outcome.latenciesMs.push(performance.now() - sent);
          const code = Code[ConnectError.from(error).code] ?? "unknown";
          outcome.failures.set(code, (outcome.failures.get(code) ?? 0) + 1);
          if (!outcome.examples.has(code)) outcome.examples.set(code, ConnectError.from(error).message);
        },
      ).finally(() => inFlight.delete(done));
      inFlight.add(done);
    }
    await sleep(Math.max(1, interval / 2));
  }
  await Promise.all(inFlight);
  return outcome;
}

async function main() {
  const instances: ServiceProcess[] = [];
  const transports: { close(): void }[] = [];
  try {
    const env = { SERVICE_NAME: service, CONSUL_CHECK_INTERVAL: "5s", OTEL_TRACES_SAMPLER: "always_off", ECHO_FAULT_SIGNALS: "1", ECHO_SLOW_MS: "2000" };
    // Started a few at a time: eleven tsx start-ups at once would take the two cores for long.
    for (let i = 0; i < instanceCount; i += 4) {
      // allSettled: the ones that started are stopped at the end even when another failed.
      const started = await Promise.allSettled(Array.from({ length: Math.min(4, instanceCount - i) }, () => startServiceProcess("src/reference/services/echo/main.ts", env, { readyTimeoutMs: 60_000 })));
      for (const result of started) if (result.status === "fulfilled") instances.push(result.value);
      const failed = started.find((result) => result.status === "rejected");
      if (failed) throw failed.reason;
    }
    await eventually("the instances to pass in Consul", async () => {
      const passing = (await consul.health.service({ service, passing: true })) as unknown[];
      return passing.length === instanceCount ? true : undefined;
    }, { timeoutMs: 60_000 });
    const victim = instances[0]!;
    // Every instance answers a while first (JIT, connections), so the baseline is not a cold start.
    const warm = createMeshTransport({ service, consul, metrics: new Registry(), balancer: "round_robin" });
    const warmClient = createClient(EchoService, warm);
    await runLoad(() => warmClient.echo({ message: "warm" }), { durationMs: 3000, concurrency: 8 });
    warm.close();

    const configurations: { name: string; fault: boolean; options: Partial<MeshTransportOptions> }[] = [
      { name: "peak_ewma, healthy (baseline)", fault: false, options: { balancer: "peak_ewma" } },
      { name: "round_robin", fault: true, options: { balancer: "round_robin" } },
      { name: "least_outstanding", fault: true, options: { balancer: "least_outstanding" } },
      { name: "peak_ewma", fault: true, options: { balancer: "peak_ewma" } },
      // As we would configure it: an attempt gives up at half the deadline and fails over, under
      // the budget. (At 300 ms, this busy box's healthy tail reached the attempt timeout too.)
      { name: "peak_ewma + retries (500 ms attempts)", fault: true, options: { balancer: "peak_ewma", retry: {}, attemptTimeoutMs: 500 } },
      { name: "round_robin + hedging", fault: true, options: { balancer: "round_robin", hedging: {} } },
      { name: "least_outstanding + hedging", fault: true, options: { balancer: "least_outstanding", hedging: {} } },
      { name: "peak_ewma + hedging", fault: true, options: { balancer: "peak_ewma", hedging: {} } },
    ];
    const rows: { name: string; outcome: Outcome }[] = [];
    // BENCH_ONLY=text keeps the baseline and the rows whose name contains it.
    const only = process.env.BENCH_ONLY;
    for (const configuration of configurations.filter((c, i) => i === 0 || !only || c.name.includes(only))) {
      const transport = createMeshTransport({ service, consul, metrics: new Registry(), retry: false, ...configuration.options });
      transports.push(transport);
      const client = createClient(EchoService, transport);
      await runLoad(() => client.echo({ message: "warm" }), { durationMs: 1000, concurrency: 8 });
      const outcome = await openLoop(() => client.echo({ message: "brr" }, { timeoutMs: deadlineMs }), seconds * 1000, (third) => {
        if (!configuration.fault) return;
        victim.signal(third === 1 ? "SIGHUP" : "SIGUSR2");
      });
      victim.signal("SIGUSR2");
      transport.close();
      rows.push({ name: configuration.name, outcome });
      const failed = [...outcome.failures.values()].reduce((a, b) => a + b, 0);
      console.error(`${configuration.name}: ${outcome.calls} calls, ${failed} failed ${JSON.stringify(Object.fromEntries(outcome.failures))} ${JSON.stringify(Object.fromEntries(outcome.examples))}`);
      await sleep(1000); // the slow instance's last calls drain
    }

    const healthy999 = percentile(rows[0]!.outcome.latenciesMs, 99.9);
    console.log(`\nBeyond Round Robin: ${instanceCount} instances, ${rate} calls/s open loop for ${seconds} s per row, 1 s deadlines, one instance 2 s slow in the middle third\n`);
    console.log("| balancer | calls | failed | success | p50 ms | p99 ms | p99.9 ms | p99.9 vs healthy |");
    console.log("|---|---|---|---|---|---|---|---|");
    for (const { name, outcome } of rows) {
      const failed = [...outcome.failures.values()].reduce((a, b) => a + b, 0);
      const l = outcome.latenciesMs;
      const p999 = percentile(l, 99.9);
      console.log(`| ${name} | ${outcome.calls} | ${failed} | ${(((outcome.calls - failed) / outcome.calls) * 100).toFixed(3)}% | ${percentile(l, 50).toFixed(1)} | ${percentile(l, 99).toFixed(1)} | ${p999.toFixed(1)} | ${(p999 / healthy999).toFixed(2)} |`);
    }

    // Client CPU per call, hedging off and on, healthy instances, alternating rounds.
    const cpu: Record<string, number[]> = { "hedging off": [], "hedging on": [] };
    const clients = {
      "hedging off": createMeshTransport({ service, consul, metrics: new Registry(), balancer: "peak_ewma" }),
      "hedging on": createMeshTransport({ service, consul, metrics: new Registry(), balancer: "peak_ewma", hedging: {} }),
    };
    transports.push(...Object.values(clients));
    for (let round = 1; round <= rounds; round++) {
      for (const [name, transport] of Object.entries(clients)) {
        const client = createClient(EchoService, transport);
        await runLoad(() => client.echo({ message: "warm" }), { durationMs: 500, concurrency: 16 });
        const before = process.cpuUsage();
        const result = await runLoad(() => client.echo({ message: "cpu" }), { durationMs: cpuSeconds * 1000, concurrency: 16, maxCalls: 1_000_000 });
        const used = process.cpuUsage(before);
        const perCall = (used.user + used.system) / result.calls;
        cpu[name]!.push(perCall);
        console.error(`cpu round ${round} ${name}: ${result.calls} calls, ${perCall.toFixed(0)} us CPU per call, ${result.errors.length} errors`);
      }
    }
    const off = percentile(cpu["hedging off"]!, 50);
    const on = percentile(cpu["hedging on"]!, 50);
    console.log(`\nClient CPU per call (median of ${rounds} alternating rounds, 16 in flight, healthy instances): hedging off ${off.toFixed(0)} us, hedging on ${on.toFixed(0)} us, ratio ${(on / off).toFixed(2)}`);
  } finally {
    for (const transport of transports) transport.close();
    await Promise.all(instances.map(killProcess));
  }
}

await main();
process.exit(0);
