/**
 * Client cost per call: the mesh client against a plain @grpc/grpc-js client, both calling bare
 * grpc-js echo servers (bench/grpc-js-echo-server.ts, each its own process, so that only the
 * clients' CPU is counted here). The load is generated in this process, `BENCH_CONCURRENCY`
 * calls in flight. Within each round the clients take turns in slices of 250 ms, so a noisy
 * neighbour hurts them alike; each round yields a ratio of the two, and the median is reported.
 *
 *   1. CPU per call, one server: process.cpuUsage() (user + system) / calls, for the mesh client
 *      (createMeshTransport as shipped: round_robin, breaker, retries, metrics; static resolver)
 *      and a grpc-js client; connect-node's createGrpcTransport is shown for reference (what the
 *      mesh client's instances ran on before). Target: mesh <= 1.25x grpc-js.
 *   2. Calls/s over 3 servers: the mesh client (round_robin; peak_ewma, the default, for
 *      reference) against grpc-js's own `round_robin` policy. Target: mesh >= 1.0x grpc-js.
 *      The grpc-js clients set a deadline on every call, as the mesh client does by default;
 *      grpc-js without one is shown for reference.
 *
 * Run: make bench-calls, which runs this compiled by tsc (.bench-build/, tsconfig.bench.json), as
 * users run the package; or: node --import tsx bench/calls-client.bench.ts
 * Env: BENCH_SECONDS (per client per round, default 2), BENCH_ROUNDS (default 5),
 *      BENCH_CONCURRENCY (calls in flight, default 32), BENCH_SLICE_MS (default 250).
 */
import { spawn, type ChildProcess } from "node:child_process";
import os from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { createClient, type Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { Registry } from "prom-client";
import { EchoService } from "../gen/meshkit/echo/v1/echo_pb.js";
import { createMeshTransport, staticResolver, type MeshTransport } from "../src/client/index.js";
import { percentile, runLoad } from "../test/support/load.js";

const seconds = Number(process.env.BENCH_SECONDS ?? 2);
const rounds = Number(process.env.BENCH_ROUNDS ?? 5);
const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 32);
const sliceMs = Number(process.env.BENCH_SLICE_MS ?? 250);
/** createMeshTransport's default deadline (its `timeoutMs`), which the grpc-js baseline sets too. */
const meshDefaultTimeoutMs = 10_000;
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

type Call = () => Promise<unknown>;
interface Measured {
  rate: number;
  cpuUsPerCall: number;
  errors: number;
}

/** Compiled by tsc (this file is .js), the server is too; otherwise both run through tsx. */
const echoServerProgram = import.meta.url.endsWith(".js") ? [path.join(root, "bench/grpc-js-echo-server.js")] : ["--import", "tsx", path.join(root, "bench/grpc-js-echo-server.ts")];

/** Starts one bare grpc-js echo server process; resolves with its port once it listens. */
async function startEchoServer(): Promise<{ port: number; process: ChildProcess }> {
  const child = spawn(process.execPath, echoServerProgram, { cwd: root, stdio: ["ignore", "pipe", "inherit"] });
  const lines = createInterface({ input: child.stdout! });
  const port = await new Promise<number>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`echo server exited with ${code}`)));
    lines.on("line", (line) => {
      const match = /^PORT (\d+)$/.exec(line);
      if (match) resolve(Number(match[1]));
    });
  });
  return { port, process: child };
}

/**
 * Measures every client over `seconds` each, in slices of `sliceMs` taken in turn (A, B, C, A,
 * B, C, ...), adding up each client's calls, CPU and time: on a shared machine a neighbour's
 * burst then falls on all clients alike rather than on one client's round.
 */
async function measureInterleaved(clients: Record<string, Call>): Promise<Record<string, Measured>> {
  const totals = Object.fromEntries(Object.keys(clients).map((name) => [name, { calls: 0, cpuUs: 0, ms: 0, errors: 0 }]));
  for (let elapsed = 0; elapsed < seconds * 1000; elapsed += sliceMs) {
    for (const [name, call] of Object.entries(clients)) {
      const cpuBefore = process.cpuUsage();
      const started = performance.now();
      const result = await runLoad(call, { durationMs: sliceMs, concurrency, maxCalls: 1_000_000 });
      const cpu = process.cpuUsage(cpuBefore);
      const total = totals[name]!;
      total.ms += performance.now() - started;
      total.cpuUs += cpu.user + cpu.system;
      total.calls += result.calls;
      total.errors += result.errors.length;
    }
  }
  return Object.fromEntries(
    Object.entries(totals).map(([name, t]) => [name, { rate: t.calls / (t.ms / 1000), cpuUsPerCall: t.cpuUs / t.calls, errors: t.errors }]),
  );
}

/**
 * A plain grpc-js client of the same proto, as a careful grpc-js user writes it: every call with
 * a deadline, as gRPC's guidance asks, here the mesh client's default of 10 s, so that both send
 * grpc-timeout and keep a deadline timer per call.
 */
function grpcJsClient(ports: number[], withDeadline = true): { call: Call; close: () => void } {
  const definition = protoLoader.loadSync(path.join(root, "proto/meshkit/echo/v1/echo.proto"), { includeDirs: [path.join(root, "proto")] });
  const loaded = grpc.loadPackageDefinition(definition) as unknown as { meshkit: { echo: { v1: { EchoService: grpc.ServiceClientConstructor } } } };
  const client = new loaded.meshkit.echo.v1.EchoService(
    `ipv4:${ports.map((port) => `127.0.0.1:${port}`).join(",")}`,
    grpc.credentials.createInsecure(),
    ports.length > 1 ? { "grpc.service_config": JSON.stringify({ loadBalancingConfig: [{ round_robin: {} }] }) } : {},
  );
  const echo = client.echo!.bind(client) as (request: object, options: grpc.CallOptions, callback: (error: Error | null, reply: unknown) => void) => void;
  return {
    call: () =>
      new Promise((resolve, reject) => echo({ message: "bench" }, withDeadline ? { deadline: Date.now() + meshDefaultTimeoutMs } : {}, (error, reply) => (error ? reject(error) : resolve(reply)))),
    close: () => client.close(),
  };
}

function meshClient(ports: number[], balancer: string): { call: Call; transport: MeshTransport } {
  const transport = createMeshTransport({
    service: "echo-calls-bench",
    resolver: staticResolver(ports.map((port) => ({ address: "127.0.0.1", port }))),
    balancer,
    metrics: new Registry(),
  });
  const client = createClient(EchoService, transport);
  return { call: () => client.echo({ message: "bench" }), transport };
}

/** Runs every client in each round (interleaved), and returns each one's rounds. */
async function alternate(clients: Record<string, Call>, label: string): Promise<Record<string, Measured[]>> {
  const runs: Record<string, Measured[]> = Object.fromEntries(Object.keys(clients).map((name) => [name, []]));
  // One unrecorded second each first: connections, and the JIT's first tiers, before any round.
  for (const call of Object.values(clients)) await runLoad(call, { durationMs: 1000, concurrency });
  for (let round = 1; round <= rounds; round++) {
    const measured = await measureInterleaved(clients);
    for (const [name, m] of Object.entries(measured)) {
      runs[name]!.push(m);
      console.error(`${label} round ${round} ${name}: ${m.rate.toFixed(0)}/s, ${m.cpuUsPerCall.toFixed(1)} us CPU/call, errors ${m.errors}`);
    }
  }
  return runs;
}

const median = (values: number[]) => percentile(values, 50);
const pairedRatios = (a: Measured[], b: Measured[], of: (m: Measured) => number) => a.map((m, i) => of(m) / of(b[i]!));

async function main() {
  const servers = await Promise.all([1, 2, 3].map(() => startEchoServer()));
  const ports = servers.map((server) => server.port);
  try {
    // 1. CPU per call against one server.
    const single = [ports[0]!];
    const grpcJsSingle = grpcJsClient(single);
    const meshSingle = meshClient(single, "round_robin");
    const connect = createClient(EchoService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${single[0]}` }) as Transport);
    const cpuRuns = await alternate(
      {
        "grpc-js client": grpcJsSingle.call,
        "mesh client": meshSingle.call,
        "connect-node createGrpcTransport": () => connect.echo({ message: "bench" }),
      },
      "cpu",
    );
    grpcJsSingle.close();
    meshSingle.transport.close();

    // 2. Calls/s over three servers.
    const grpcJsRr = grpcJsClient(ports);
    const meshRr = meshClient(ports, "round_robin");
    const meshEwma = meshClient(ports, "peak_ewma");
    // For reference: grpc-js without a deadline (no timer, no grpc-timeout), as it was measured before.
    const grpcJsRrNoDeadline = grpcJsClient(ports, false);
    const rateRuns = await alternate(
      { "grpc-js round_robin": grpcJsRr.call, "mesh round_robin": meshRr.call, "mesh peak_ewma": meshEwma.call, "grpc-js round_robin, no deadline": grpcJsRrNoDeadline.call },
      "rate",
    );
    grpcJsRr.close();
    grpcJsRrNoDeadline.close();
    meshRr.transport.close();
    meshEwma.transport.close();

    console.log(`\nclient calls benchmark: ${rounds} rounds x ${seconds} s per client, ${concurrency} calls in flight, tiny unary Echo, bare grpc-js echo servers in their own processes`);
    console.log(`machine: ${os.cpus().length} x ${os.cpus()[0]?.model ?? "cpu"}, node ${process.version}\n`);
    console.log("| 1 server | calls/s | CPU us/call (median) | CPU us/call per round | errors |");
    console.log("|---|---|---|---|---|");
    for (const [name, runs] of Object.entries(cpuRuns)) {
      console.log(`| ${name} | ${median(runs.map((r) => r.rate)).toFixed(0)} | ${median(runs.map((r) => r.cpuUsPerCall)).toFixed(1)} | ${runs.map((r) => r.cpuUsPerCall.toFixed(0)).join(", ")} | ${runs.reduce((n, r) => n + r.errors, 0)} |`);
    }
    console.log("\n| 3 servers | calls/s (median) | calls/s per round | CPU us/call | errors |");
    console.log("|---|---|---|---|---|");
    for (const [name, runs] of Object.entries(rateRuns)) {
      console.log(`| ${name} | ${median(runs.map((r) => r.rate)).toFixed(0)} | ${runs.map((r) => r.rate.toFixed(0)).join(", ")} | ${median(runs.map((r) => r.cpuUsPerCall)).toFixed(1)} | ${runs.reduce((n, r) => n + r.errors, 0)} |`);
    }
    const cpuRatios = pairedRatios(cpuRuns["mesh client"]!, cpuRuns["grpc-js client"]!, (m) => m.cpuUsPerCall);
    const connectRatios = pairedRatios(cpuRuns["connect-node createGrpcTransport"]!, cpuRuns["grpc-js client"]!, (m) => m.cpuUsPerCall);
    const rateRatios = pairedRatios(rateRuns["mesh round_robin"]!, rateRuns["grpc-js round_robin"]!, (m) => m.rate);
    const ewmaRatios = pairedRatios(rateRuns["mesh peak_ewma"]!, rateRuns["grpc-js round_robin"]!, (m) => m.rate);
    const cpuRatio = median(cpuRatios);
    const rateRatio = median(rateRatios);
    const rateCpuRatios = pairedRatios(rateRuns["mesh round_robin"]!, rateRuns["grpc-js round_robin"]!, (m) => m.cpuUsPerCall);
    const rounded = (values: number[]) => values.map((v) => v.toFixed(2)).join(", ");
    console.log(`\nmesh client CPU per call / grpc-js client's: ${cpuRatio.toFixed(3)} (rounds: ${rounded(cpuRatios)}; target <= 1.25: ${cpuRatio <= 1.25 ? "met" : "NOT met"})`);
    console.log(`  (connect-node createGrpcTransport / grpc-js, for reference: ${median(connectRatios).toFixed(2)})`);
    console.log(`mesh client round_robin calls/s over 3 instances / grpc-js round_robin's: ${rateRatio.toFixed(3)} (rounds: ${rounded(rateRatios)}; target >= 1.0: ${rateRatio >= 1.0 ? "met" : "NOT met"})`);
    console.log(`  (mesh peak_ewma / grpc-js round_robin, for reference: ${median(ewmaRatios).toFixed(2)}; CPU per call, mesh round_robin / grpc-js round_robin: ${median(rateCpuRatios).toFixed(2)})`);
    const noDeadlineRatios = pairedRatios(rateRuns["mesh round_robin"]!, rateRuns["grpc-js round_robin, no deadline"]!, (m) => m.rate);
    console.log(`  (mesh round_robin / grpc-js round_robin without a deadline, for reference: ${median(noDeadlineRatios).toFixed(2)}; rounds: ${rounded(noDeadlineRatios)})`);
  } finally {
    for (const server of servers) server.process.kill("SIGTERM");
  }
  process.exit(0);
}

await main();
