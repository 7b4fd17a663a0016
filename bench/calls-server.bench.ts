/**
 * Server host calls/s and CPU per call against a bare @grpc/grpc-js server of the same proto,
 * with ghz (Go, a process of its own) as the load: one HTTP/2 connection, BENCH_CONCURRENCY
 * calls in flight. Every server runs in its own process (bench/support/echo-server.ts):
 *   - grpc-js                  bare @grpc/grpc-js server: the baseline of every ratio
 *   - grpc-js + OpenTelemetry  the tracing peer: the bare grpc-js server traced by
 *                              @opentelemetry/instrumentation-grpc under the OpenTelemetry Node SDK,
 *                              every span sampled and exported over OTLP to the running Jaeger
 *                              (bench/support/peer-telemetry.ts): what a Node team runs instead
 *   - connect-node             bare connect-node server, no interceptors
 *   - host via connect-node    the host with every call through connect-node (as it shipped)
 *   - host                     the host with its lean gRPC path, no interceptors
 *   - host + interceptors      the echo service (runService): tracing sampled at 100% and exported
 *                              to the running Jaeger, metrics, error mapping, deadline, validation,
 *                              info logs, registered in Consul
 *   - host + interceptors, spans to a receive-only collector   the same, exporting to Jaeger's
 *                              binary run here with its OTLP receiver and the `nop` exporter (for
 *                              reference: every span recorded, encoded, sent and acknowledged, but
 *                              no trace backend storing it on the same two cores)
 *   - host + interceptors, no spans   the same with the always_off sampler (for reference: what
 *                              everything but the spans costs)
 *   - host + interceptors, no SDK   the same with the OpenTelemetry SDK disabled
 *                              (OTEL_SDK_DISABLED=true: tracing through the API's no-ops; for
 *                              reference: what the chain costs apart from tracing)
 *   - host + interceptors, gzip responses   (10 KB only) the same with response compression on:
 *                              ghz offers gzip, so every answer is gzipped; the other host rows
 *                              answer uncompressed, as the grpc-js servers do (RESPONSE_COMPRESSION)
 * Every server runs compiled by tsc (tsconfig.bench.json, into .bench-build/), as users run the
 * package, not through tsx, whose keepNames costs the host about 10 us per tiny call.
 * Targets: host / grpc-js calls/s >= 0.80, and host + interceptors / the tracing peer calls/s
 * >= 1.0 (both tracing every call into the same Jaeger), each workload.
 * Workloads: tiny unary, 10 KB unary (10 KB each way), server streams of 100 messages. Rounds
 * alternate the servers, so a noisy neighbour hurts them alike. Each target ratio is taken within
 * each round (the two servers measured seconds apart) and the median of those rounds counts, as
 * bench/calls-client.bench.ts does; the ratio of the two servers' median rounds is printed beside
 * it. The tables show each server's median round. Calls/s
 * on a shared 2-core box swing with the neighbours' load; server CPU per call (from /proc, the
 * server process only) swings much less, so both ratios are printed.
 * Then resident memory of the host and of grpc-js holding 1,000 idle connections, and then one
 * open server stream (grpc.health.v1 Watch) on each. Last, what each interceptor costs per call
 * apart from the network (bench/support/interceptor-costs.ts).
 *
 * Run: make bench-calls   (or: source scripts/lib.sh && node --import tsx bench/calls-server.bench.ts)
 * Needs: ghz and jaeger (scripts/setup.sh), and for the interceptors case Consul and the running
 * Jaeger (make infra-up).
 * Env: BENCH_SECONDS (per server per workload per round, default 2), BENCH_ROUNDS (default 7),
 *      BENCH_CONCURRENCY (calls in flight, default 32), BENCH_CONNECTIONS (memory test, default 1000).
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import http2 from "node:http2";
import os from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { promisify } from "node:util";
import { killProcess, projectRoot, startServiceProcess, type ServiceProcess } from "../test/support/service-process.js";
import { grpcFrame } from "../test/support/raw-grpc.js";
import { freePort } from "../test/support/free-port.js";
import { compileForBench, compiledRoot } from "./support/compiled.js";
import { cpuSeconds, failuresOf, median, runGhz, type GhzReport } from "./support/ghz.js";

const seconds = Number(process.env.BENCH_SECONDS ?? 2);
const rounds = Number(process.env.BENCH_ROUNDS ?? 7);
const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 32);
const connections = Number(process.env.BENCH_CONNECTIONS ?? 1000);

type ServerKind =
  | "grpc-js"
  | "grpc-js + OpenTelemetry"
  | "connect-node"
  | "host via connect-node"
  | "host"
  | "host + interceptors"
  | "host + interceptors, spans to a receive-only collector"
  | "host + interceptors, no spans"
  | "host + interceptors, no SDK"
  | "host + interceptors, gzip responses";

interface Workload {
  name: string;
  call: string;
  data: object;
  /** Messages per call, to report messages/s for streams. */
  messages: number;
  servers: ServerKind[];
}

const withInterceptors: ServerKind[] = [
  "grpc-js + OpenTelemetry",
  "host + interceptors",
  "host + interceptors, spans to a receive-only collector",
  "host + interceptors, no spans",
  "host + interceptors, no SDK",
];
const allServers: ServerKind[] = ["grpc-js", "connect-node", "host via connect-node", "host", ...withInterceptors];
const workloads: Workload[] = [
  { name: "tiny unary", call: "meshkit.echo.v1.EchoService/Echo", data: { message: "bench" }, messages: 1, servers: allServers },
  { name: "10 KB unary", call: "meshkit.echo.v1.EchoService/Echo", data: { message: "x".repeat(10 * 1024) }, messages: 1, servers: ["grpc-js", "host", ...withInterceptors, "host + interceptors, gzip responses"] },
  { name: "stream of 100", call: "meshkit.echo.v1.EchoService/EchoStream", data: { message: "bench", count: 100 }, messages: 100, servers: ["grpc-js", "host", ...withInterceptors] },
];

interface RunningServer {
  pid: number;
  port: number;
  stop(): Promise<void>;
}

/**
 * Starts bench/support/echo-server.ts, as compiled, as `kind` and waits for the port it prints.
 * The tracing peer (`grpc-js-otel`) starts with its OpenTelemetry set-up loaded first
 * (bench/support/peer-telemetry.ts), exporting to the running Jaeger (OTEL_EXPORTER_OTLP_ENDPOINT).
 */
async function startBenchServer(kind: string): Promise<RunningServer> {
  const preload = kind === "grpc-js-otel" ? ["--import", path.join(compiledRoot, "bench/support/peer-telemetry.js")] : [];
  const child: ChildProcess = spawn(process.execPath, [...preload, path.join(compiledRoot, "bench/support/echo-server.js"), kind], {
    cwd: projectRoot,
    stdio: ["ignore", "pipe", "inherit"],
  });
  const [line] = (await once(createInterface({ input: child.stdout! }), "line")) as [string];
  const { port } = JSON.parse(line) as { port: number };
  return {
    pid: child.pid!,
    port,
    stop: async () => {
      if (child.exitCode !== null) return;
      child.kill("SIGKILL");
      await once(child, "exit");
    },
  };
}

/**
 * The echo service as users run it: every interceptor on, tracing sampled at 100% and exported
 * to `otlpEndpoint` (default: the running Jaeger). With the `always_off` sampler (a reference
 * row, not a target) the tracing interceptor still runs but the SDK records no span: what the
 * other interceptors cost, apart from spans. With `sdk: false` (OTEL_SDK_DISABLED) no SDK starts:
 * tracing goes through the API's no-ops, what the chain costs apart from tracing. `instanceId`
 * is 10 characters, as long as the other servers' ("bench-host"), so that all of them send the
 * same bytes (the default, the name plus a UUID, is 4x longer).
 */
async function startEchoService(
  instanceId: string,
  sampler: "always_on" | "always_off",
  { otlpEndpoint, sdk = true, gzip = false }: { otlpEndpoint?: string; sdk?: boolean; gzip?: boolean } = {},
): Promise<RunningServer> {
  const service: ServiceProcess = await startServiceProcess("src/reference/services/echo/main.ts", {
    SERVICE_NAME: `echo-calls-bench-${instanceId}-${process.pid}`,
    INSTANCE_ID: instanceId,
    OTEL_TRACES_SAMPLER: sampler,
    ...(sdk ? {} : { OTEL_SDK_DISABLED: "true" }),
    ...(otlpEndpoint ? { OTEL_EXPORTER_OTLP_ENDPOINT: otlpEndpoint } : {}),
    // ghz offers gzip; the grpc-js servers answer uncompressed, so the host does too, except in
    // the row that measures what gzipping 10 KB answers costs.
    RESPONSE_COMPRESSION: String(gzip),
    LOG_LEVEL: "info",
  }, { compiledRoot });
  return { pid: service.child.pid!, port: service.port, stop: () => killProcess(service) };
}

/**
 * A receive-only trace collector: Jaeger's binary (an OpenTelemetry Collector build) with an
 * OTLP/gRPC receiver on a free loopback port and the `nop` exporter, so that it acknowledges
 * and decodes every export request and keeps nothing: what the spans cost the served calls
 * apart from a trace backend's storage on the same cores.
 */
async function startReceiveOnlyCollector(): Promise<RunningServer> {
  const port = await freePort();
  const dir = await mkdtemp(path.join(os.tmpdir(), "meshkit-bench-collector-"));
  const config = path.join(dir, "collector.yaml");
  await writeFile(
    config,
    [
      "service:",
      "  pipelines:",
      "    traces: { receivers: [otlp], exporters: [nop] }",
      "  telemetry: { metrics: { level: none }, logs: { level: warn } }",
      "receivers:",
      `  otlp: { protocols: { grpc: { endpoint: "127.0.0.1:${port}" } } }`,
      "exporters:",
      "  nop: {}",
      "",
    ].join("\n"),
  );
  const child = spawn("jaeger", ["--config", config], { stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  child.stderr!.on("data", (chunk: Buffer) => (log = (log + chunk.toString()).slice(-4000)));
  const stop = async () => {
    if (child.exitCode === null) {
      child.kill("SIGKILL");
      await once(child, "exit");
    }
    await rm(dir, { recursive: true, force: true });
  };
  for (const deadline = Date.now() + 30_000; !(await portOpen(port)); ) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`the receive-only collector (jaeger --config ${config}) did not listen on 127.0.0.1:${port}:\n${log}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return { pid: child.pid!, port, stop };
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

function residentBytes(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, "utf8").split("\n").find((l) => l.startsWith("VmRSS:"))!;
  return Number(line.split(/\s+/)[1]) * 1024;
}

interface Measured {
  callsPerSecond: number;
  cpuMicrosPerCall: number;
  p50Ms: number;
  p99Ms: number;
  failed: number;
  /** CPU the trace collector (on the same cores) spent per call meanwhile; NaN when not measured. */
  collectorMicrosPerCall: number;
}

const execFileAsync = promisify(execFile);

function ghz(port: number, workload: Workload, durationSeconds: number): Promise<GhzReport> {
  return runGhz(port, { call: workload.call, data: workload.data, concurrency, durationSeconds });
}

async function measure(server: RunningServer, workload: Workload, collectorPid?: number): Promise<Measured> {
  const cpuBefore = cpuSeconds(server.pid);
  const collectorBefore = collectorPid === undefined ? NaN : cpuSeconds(collectorPid);
  const report = await ghz(server.port, workload, seconds);
  const cpu = cpuSeconds(server.pid) - cpuBefore;
  const collectorCpu = collectorPid === undefined ? NaN : cpuSeconds(collectorPid) - collectorBefore;
  const latency = (percentage: number) => (report.latencyDistribution?.find((entry) => entry.percentage === percentage)?.latency ?? NaN) / 1e6;
  const ok = report.statusCodeDistribution?.OK ?? 0;
  const failures = failuresOf(report);
  for (const failure of failures.elsewhere) console.error(`  ${workload.name} on port ${server.port}: ${failure}`);
  return {
    callsPerSecond: ok / (report.total / 1e9),
    cpuMicrosPerCall: (cpu * 1e6) / Math.max(1, ok),
    p50Ms: latency(50),
    p99Ms: latency(99),
    failed: report.count - ok - failures.cutAtEnd,
    collectorMicrosPerCall: (collectorCpu * 1e6) / Math.max(1, ok),
  };
}

/** The pid of the Jaeger that `make infra-up` started (.run/jaeger.pid), if it still runs. */
function runningJaegerPid(): number | undefined {
  try {
    const pid = Number(readFileSync(path.join(projectRoot, ".run/jaeger.pid"), "utf8").trim());
    cpuSeconds(pid);
    return pid;
  } catch {
    return undefined;
  }
}

/**
 * Opens `count` HTTP/2 connections to `port` and reads the server's resident memory; then one
 * grpc.health.v1 Watch stream on each (a server stream that stays open) and reads it again.
 */
async function memoryUnderConnections(server: RunningServer, count: number): Promise<{ idle: number; connections: number; streams: number }> {
  await new Promise((resolve) => setTimeout(resolve, 500));
  const idle = residentBytes(server.pid);
  const sessions: http2.ClientHttp2Session[] = [];
  try {
    for (let i = 0; i < count; i += 100) {
      await Promise.all(
        Array.from({ length: Math.min(100, count - i) }, async () => {
          const session = http2.connect(`http://127.0.0.1:${server.port}`);
          session.on("error", () => undefined);
          sessions.push(session);
          await once(session, "remoteSettings");
        }),
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
    const withConnections = residentBytes(server.pid);
    // HealthCheckRequest{service: ""} is the empty message: a frame of zero bytes.
    await Promise.all(
      sessions.map(async (session) => {
        const stream = session.request({ ":method": "POST", ":path": "/grpc.health.v1.Health/Watch", "content-type": "application/grpc", te: "trailers" });
        stream.on("error", () => undefined);
        stream.end(grpcFrame(new Uint8Array(0)));
        await once(stream, "data"); // the current status: the stream is open and served
      }),
    );
    await new Promise((resolve) => setTimeout(resolve, 500));
    const withStreams = residentBytes(server.pid);
    return { idle, connections: withConnections, streams: withStreams };
  } finally {
    for (const session of sessions) session.destroy();
  }
}

async function main() {
  const servers = new Map<ServerKind, RunningServer>();
  const collectors: RunningServer[] = [];
  try {
    await compileForBench();
    servers.set("grpc-js", await startBenchServer("grpc-js"));
    servers.set("grpc-js + OpenTelemetry", await startBenchServer("grpc-js-otel"));
    servers.set("connect-node", await startBenchServer("connect-node"));
    servers.set("host via connect-node", await startBenchServer("host-connect-node"));
    servers.set("host", await startBenchServer("host"));
    const receiveOnly = await startReceiveOnlyCollector();
    collectors.push(receiveOnly);
    servers.set("host + interceptors", await startEchoService("bench-echo", "always_on"));
    servers.set("host + interceptors, spans to a receive-only collector", await startEchoService("bench-recv", "always_on", { otlpEndpoint: `http://127.0.0.1:${receiveOnly.port}` }));
    servers.set("host + interceptors, no spans", await startEchoService("bench-none", "always_off"));
    servers.set("host + interceptors, no SDK", await startEchoService("bench-nsdk", "always_off", { sdk: false }));
    servers.set("host + interceptors, gzip responses", await startEchoService("bench-gzip", "always_on", { gzip: true }));

    // Warm-up: JIT and connection set-up, not measured.
    for (const workload of workloads) for (const kind of workload.servers) await ghz(servers.get(kind)!.port, workload, 1);

    // The CPU each exporting server's collector spends meanwhile.
    const collectorOf = new Map<ServerKind, number | undefined>([
      ["grpc-js + OpenTelemetry", runningJaegerPid()],
      ["host + interceptors", runningJaegerPid()],
      ["host + interceptors, gzip responses", runningJaegerPid()],
      ["host + interceptors, spans to a receive-only collector", collectors[0]!.pid],
    ]);
    const results = new Map<string, Measured[]>();
    for (let round = 1; round <= rounds; round++) {
      for (const workload of workloads) {
        for (const kind of workload.servers) {
          const measured = await measure(servers.get(kind)!, workload, collectorOf.get(kind));
          const key = `${workload.name}|${kind}`;
          results.set(key, [...(results.get(key) ?? []), measured]);
          console.error(`round ${round} ${workload.name} ${kind}: ${measured.callsPerSecond.toFixed(0)} calls/s, ${measured.cpuMicrosPerCall.toFixed(0)} us CPU/call, failed ${measured.failed}`);
        }
      }
    }
    /** `kind`'s calls/s over `base`'s, round by round (measured seconds apart), and their median. */
    const pairedRatio = (workload: Workload, kind: ServerKind, base: ServerKind) => {
      const bases = results.get(`${workload.name}|${base}`)!;
      const ratios = results.get(`${workload.name}|${kind}`)!.map((run, i) => run.callsPerSecond / bases[i]!.callsPerSecond);
      return { median: median(ratios), rounds: ratios.map((ratio) => ratio.toFixed(2)).join(", ") };
    };
    const collectorSpent = (measured: Measured, collector: string) =>
      Number.isNaN(measured.collectorMicrosPerCall) ? "" : `; ${collector} spent ${measured.collectorMicrosPerCall.toFixed(0)} us CPU per call`;
    const summary = (workload: Workload, kind: ServerKind) => {
      const runs = results.get(`${workload.name}|${kind}`)!;
      return {
        callsPerSecond: median(runs.map((r) => r.callsPerSecond)),
        cpuMicrosPerCall: median(runs.map((r) => r.cpuMicrosPerCall)),
        p50Ms: median(runs.map((r) => r.p50Ms)),
        p99Ms: median(runs.map((r) => r.p99Ms)),
        failed: runs.reduce((sum, r) => sum + r.failed, 0),
        collectorMicrosPerCall: median(runs.map((r) => r.collectorMicrosPerCall)),
      };
    };

    console.log(`\nserver calls benchmark: ghz, 1 connection, ${concurrency} in flight, ${rounds} alternated rounds x ${seconds} s per server and workload (tables: each server's median round; targets: the median of the rounds' ratios)`);
    console.log(`machine: ${os.cpus().length} x ${os.cpus()[0]?.model ?? "cpu"}, node ${process.version}\n`);
    console.log("| workload | server | calls/s | server CPU us/call | p50 ms | p99 ms | failed | calls/s vs grpc-js | CPU/call vs grpc-js |");
    console.log("|---|---|---|---|---|---|---|---|---|");
    const verdicts: string[] = [];
    for (const workload of workloads) {
      const baseline = summary(workload, "grpc-js");
      for (const kind of workload.servers) {
        const r = summary(workload, kind);
        console.log(
          `| ${workload.name} | ${kind} | ${r.callsPerSecond.toFixed(0)} | ${r.cpuMicrosPerCall.toFixed(0)} | ${r.p50Ms.toFixed(2)} | ${r.p99Ms.toFixed(2)} | ${r.failed} | ${(r.callsPerSecond / baseline.callsPerSecond).toFixed(2)} | ${(r.cpuMicrosPerCall / baseline.cpuMicrosPerCall).toFixed(2)} |`,
        );
      }
      const host = summary(workload, "host");
      const intercepted = summary(workload, "host + interceptors");
      const peer = summary(workload, "grpc-js + OpenTelemetry");
      const hostRatio = pairedRatio(workload, "host", "grpc-js");
      const peerRatio = pairedRatio(workload, "host + interceptors", "grpc-js + OpenTelemetry");
      const interceptorRatio = pairedRatio(workload, "host + interceptors", "host");
      const peerOfBare = pairedRatio(workload, "grpc-js + OpenTelemetry", "grpc-js");
      const hostCpu = host.cpuMicrosPerCall / baseline.cpuMicrosPerCall;
      const peerCpu = intercepted.cpuMicrosPerCall / peer.cpuMicrosPerCall;
      const interceptorCpu = intercepted.cpuMicrosPerCall / host.cpuMicrosPerCall;
      const ofMedians = (a: Measured, b: Measured) => (a.callsPerSecond / b.callsPerSecond).toFixed(3);
      verdicts.push(
        `${workload.name}: host / grpc-js calls/s = ${hostRatio.median.toFixed(3)} (target >= 0.80: ${hostRatio.median >= 0.8 ? "met" : "NOT met"}; rounds ${hostRatio.rounds}; ratio of median rounds ${ofMedians(host, baseline)}); server CPU per call ${hostCpu.toFixed(2)}x grpc-js's`,
      );
      verdicts.push(
        `${workload.name}: host + interceptors / grpc-js + OpenTelemetry calls/s = ${peerRatio.median.toFixed(3)} (target >= 1.0: ${peerRatio.median >= 1 ? "met" : "NOT met"}; rounds ${peerRatio.rounds}; ratio of median rounds ${ofMedians(intercepted, peer)}); server CPU per call ${peerCpu.toFixed(2)}x the peer's` +
          collectorSpent(intercepted, "the trace collector (Jaeger, same cores)") +
          collectorSpent(peer, "for the peer's spans it"),
      );
      verdicts.push(
        `  (for reference: host + interceptors / host ${interceptorRatio.median.toFixed(3)}, rounds ${interceptorRatio.rounds}, server CPU per call ${interceptorCpu.toFixed(2)}x; grpc-js + OpenTelemetry / grpc-js ${peerOfBare.median.toFixed(3)}, rounds ${peerOfBare.rounds})`,
      );
      const received = summary(workload, "host + interceptors, spans to a receive-only collector");
      const receivedRatio = pairedRatio(workload, "host + interceptors, spans to a receive-only collector", "host");
      const noSpansRatio = pairedRatio(workload, "host + interceptors, no spans", "host");
      const noSdkRatio = pairedRatio(workload, "host + interceptors, no SDK", "host");
      verdicts.push(
        `  (for reference: spans to a receive-only collector ${receivedRatio.median.toFixed(3)}, rounds ${receivedRatio.rounds}${collectorSpent(received, "it")}; no spans ${noSpansRatio.median.toFixed(3)}, rounds ${noSpansRatio.rounds}; no SDK ${noSdkRatio.median.toFixed(3)}, rounds ${noSdkRatio.rounds})`,
      );
      if (workload.servers.includes("host + interceptors, gzip responses")) {
        const gzipped = summary(workload, "host + interceptors, gzip responses");
        const gzipRatio = pairedRatio(workload, "host + interceptors, gzip responses", "host + interceptors");
        verdicts.push(
          `  (response compression: gzipped answers ${gzipRatio.median.toFixed(3)}x the calls/s of uncompressed ones, rounds ${gzipRatio.rounds}; server CPU per call ${gzipped.cpuMicrosPerCall.toFixed(0)} us against ${intercepted.cpuMicrosPerCall.toFixed(0)} us: gzip costs ${(gzipped.cpuMicrosPerCall - intercepted.cpuMicrosPerCall).toFixed(0)} us per call)`,
        );
      }
    }
    console.log(`\n${verdicts.join("\n")}`);

    // Memory: fresh processes, so the load above does not count.
    for (const server of servers.values()) await server.stop();
    servers.clear();
    console.log(`\n| server | RSS idle MiB | + ${connections} idle connections MiB | + 1 open stream on each MiB | KiB per connection | KiB per stream |`);
    console.log("|---|---|---|---|---|---|");
    for (const kind of ["grpc-js", "host"] as const) {
      const server = await startBenchServer(kind);
      try {
        const memory = await memoryUnderConnections(server, connections);
        const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(1);
        console.log(
          `| ${kind} | ${mib(memory.idle)} | ${mib(memory.connections)} | ${mib(memory.streams)} | ${((memory.connections - memory.idle) / 1024 / connections).toFixed(1)} | ${((memory.streams - memory.connections) / 1024 / connections).toFixed(1)} |`,
        );
      } finally {
        await server.stop();
      }
    }

    const { stdout } = await execFileAsync(process.execPath, ["--expose-gc", path.join(compiledRoot, "bench/support/interceptor-costs.js")], { cwd: projectRoot, timeout: 120_000 });
    const costs = JSON.parse(stdout.trim().split("\n").pop()!) as Record<string, number>;
    const harness = costs.none ?? 0;
    console.log("\ninterceptor cost per call apart from the network (in-process, a closed loop of 32 in flight, CPU per call minus the bare harness's; tracing includes the export to Jaeger):\n");
    console.log("| interceptors | CPU us per call |");
    console.log("|---|---|");
    for (const [name, micros] of Object.entries(costs)) if (name !== "none") console.log(`| ${name} | ${(micros - harness).toFixed(1)} |`);
  } finally {
    await Promise.all([...servers.values(), ...collectors].map((server) => server.stop()));
  }
  process.exit(0);
}

await main();
