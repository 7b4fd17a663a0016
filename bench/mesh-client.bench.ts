/**
 * Mesh client throughput and latency against two baselines measured in the same run, on the
 * same three echo processes registered in the real Consul:
 *   - raw:     one Connect gRPC transport per instance, rotated by the loop (no discovery,
 *              breaker, retry, tracing or metrics): the floor of what connect-node costs;
 *   - grpc-js: @grpc/grpc-js with its round_robin policy over the same addresses.
 * Rounds alternate the clients, so a noisy neighbour hurts them alike; the median round counts.
 * The mesh client also runs with the discovery chain off: the chain of a service without config
 * entries is one resolver, and following it should cost nothing measurable.
 * Then, in the same run: tracing on (the OpenTelemetry SDK exporting to Jaeger), the mesh client
 * against raw connect carrying the same client span, and failover under load (one of the three instances SIGKILLed, then a new one
 * started) with the errors callers saw.
 *
 * Run: make bench-mesh   (or: source scripts/lib.sh && node --import tsx bench/mesh-client.bench.ts)
 * Env: BENCH_SECONDS (per client per round, default 3), BENCH_ROUNDS (default 3),
 *      BENCH_CONCURRENCY (calls in flight, default 32).
 */
import os from "node:os";
import path from "node:path";
import { ConnectError, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { Registry } from "prom-client";
import { EchoService } from "../gen/meshkit/echo/v1/echo_pb.js";
import { createMeshTransport } from "../src/client/index.js";
import { endCallSpan, injectTraceContext, startCallSpan } from "../src/client/telemetry/tracing.js";
import { startTelemetry } from "../src/platform/telemetry.js";
import { consul, eventually } from "../test/support/infra.js";
import { percentile, runLoad } from "../test/support/load.js";
import { killProcess, projectRoot, startServiceProcess, type ServiceProcess } from "../test/support/service-process.js";

const seconds = Number(process.env.BENCH_SECONDS ?? 3);
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 32);
const service = `echo-bench-${process.pid}`;

type Call = () => Promise<unknown>;
interface Measured {
  rate: number;
  p50: number;
  p99: number;
  errors: number;
}

async function measure(call: Call): Promise<Measured> {
  await runLoad(call, { durationMs: 500, concurrency }); // warm connections and JIT
  const result = await runLoad(call, { durationMs: seconds * 1000, concurrency, maxCalls: 5_000_000 });
  return {
    rate: result.calls / seconds,
    p50: percentile(result.latenciesMs, 50),
    p99: percentile(result.latenciesMs, 99),
    errors: result.errors.length,
  };
}

function grpcJsCall(ports: number[]): { call: Call; close: () => void } {
  const definition = protoLoader.loadSync(path.join(projectRoot, "proto/meshkit/echo/v1/echo.proto"), { includeDirs: [path.join(projectRoot, "proto")] });
  const loaded = grpc.loadPackageDefinition(definition) as unknown as {
    meshkit: { echo: { v1: { EchoService: grpc.ServiceClientConstructor } } };
  };
  const client = new loaded.meshkit.echo.v1.EchoService(
    `ipv4:${ports.map((port) => `127.0.0.1:${port}`).join(",")}`,
    grpc.credentials.createInsecure(),
    { "grpc.service_config": JSON.stringify({ loadBalancingConfig: [{ round_robin: {} }] }) },
  );
  const echo = client.echo!.bind(client) as (request: object, callback: (error: Error | null, reply: unknown) => void) => void;
  const call: Call = () => new Promise((resolve, reject) => echo({ message: "bench" }, (error, reply) => (error ? reject(error) : resolve(reply))));
  return { call, close: () => client.close() };
}

async function main() {
  const instances: ServiceProcess[] = [];
  try {
    // Server-side tracing off: the servers share this machine's cores with the client, and
    // exporting a span per call would measure the exporter rather than the clients.
    const env = { SERVICE_NAME: service, CONSUL_CHECK_INTERVAL: "1s", OTEL_TRACES_SAMPLER: "always_off" };
    instances.push(...(await Promise.all([1, 2, 3].map(() => startServiceProcess("src/reference/services/echo/main.ts", env)))));
    const ports = instances.map((instance) => instance.port);
    await eventually("the instances to pass in Consul", async () => {
      const passing = (await consul.health.service({ service, passing: true })) as unknown[];
      return passing.length === 3 ? true : undefined;
    });

    const mesh = createMeshTransport({ service, consul, balancer: "round_robin", metrics: new Registry() });
    const meshClient = createClient(EchoService, mesh);
    const meshEwma = createMeshTransport({ service, consul, balancer: "peak_ewma", metrics: new Registry() });
    // The discovery chain off: what following the chain costs a service with no config entries
    // (its chain is one resolver, so calls take the transport's own path); meant to be ~1.00.
    const meshNoChain = createMeshTransport({ service, consul, balancer: "round_robin", metrics: new Registry(), discoveryChain: false });
    const meshNoChainClient = createClient(EchoService, meshNoChain);
    const meshEwmaClient = createClient(EchoService, meshEwma);
    const rawClients = ports.map((port) => createClient(EchoService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` }) as Transport));
    let next = 0;
    const grpcJs = grpcJsCall(ports);

    const clients: Record<string, Call> = {
      "raw connect": () => rawClients[next++ % rawClients.length]!.echo({ message: "bench" }),
      "grpc-js round_robin": grpcJs.call,
      "mesh round_robin": () => meshClient.echo({ message: "bench" }),
      "mesh peak_ewma": () => meshEwmaClient.echo({ message: "bench" }),
      "mesh round_robin, discovery chain off": () => meshNoChainClient.echo({ message: "bench" }),
    };
    const median = (values: number[]) => percentile(values, 50);
    const results: Record<string, Measured[]> = Object.fromEntries(Object.keys(clients).map((name) => [name, []]));
    for (let round = 1; round <= rounds; round++) {
      for (const [name, call] of Object.entries(clients)) {
        const measured = await measure(call);
        results[name]!.push(measured);
        console.error(`round ${round} ${name}: ${measured.rate.toFixed(0)}/s p50 ${measured.p50.toFixed(2)} ms p99 ${measured.p99.toFixed(2)} ms errors ${measured.errors}`);
      }
    }
    const summary = Object.fromEntries(
      Object.entries(results).map(([name, runs]) => [
        name,
        { rate: median(runs.map((r) => r.rate)), p50: median(runs.map((r) => r.p50)), p99: median(runs.map((r) => r.p99)), errors: runs.reduce((n, r) => n + r.errors, 0) },
      ]),
    );
    // Tracing on: the SDK is global, so it is started only after the tracing-off rounds. The
    // baseline is raw connect with the same client span (the mesh client's own span code) in an
    // interceptor: what a caller would pay for tracing without the mesh client.
    const telemetry = startTelemetry({ serviceName: "meshkit-bench" });
    const spanPerCall: Interceptor = (next) => async (request) => {
      const { span, context } = startCallSpan(service, request.method);
      injectTraceContext(context, request.header);
      try {
        const response = await next(request);
        endCallSpan(span, 0, undefined, 1);
        return response;
      } catch (error) {
        const connectError = ConnectError.from(error);
        endCallSpan(span, connectError.code, connectError, 1);
        throw error;
      }
    };
    const tracedRawClients = ports.map((port) => createClient(EchoService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}`, interceptors: [spanPerCall] }) as Transport));
    const traced: Record<string, Call> = {
      "raw connect + client span, tracing on": () => tracedRawClients[next++ % tracedRawClients.length]!.echo({ message: "bench" }),
      "mesh round_robin, tracing on": clients["mesh round_robin"]!,
    };
    const tracedRuns: Record<string, Measured[]> = Object.fromEntries(Object.keys(traced).map((name) => [name, []]));
    for (let round = 1; round <= rounds; round++) {
      for (const [name, call] of Object.entries(traced)) {
        tracedRuns[name]!.push(await measure(call));
        console.error(`round ${round} ${name}: ${tracedRuns[name]!.at(-1)!.rate.toFixed(0)}/s`);
      }
    }
    for (const [name, runs] of Object.entries(tracedRuns)) {
      summary[name] = {
        rate: median(runs.map((r) => r.rate)),
        p50: median(runs.map((r) => r.p50)),
        p99: median(runs.map((r) => r.p99)),
        errors: runs.reduce((n, r) => n + r.errors, 0),
      };
    }
    await telemetry.shutdown();

    // Failover under load: kill one instance at 1 s, start a replacement at 2 s.
    const failoverSeconds = Math.max(seconds, 5);
    const killAndReplace = (async () => {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      instances[0]!.signal("SIGKILL");
      await new Promise((resolve) => setTimeout(resolve, 1000));
      instances.push(await startServiceProcess("src/reference/services/echo/main.ts", env));
    })();
    const failover = await runLoad(clients["mesh round_robin"]!, { durationMs: failoverSeconds * 1000, concurrency, maxCalls: 5_000_000 });
    await killAndReplace;
    summary["mesh round_robin, instance killed + replaced"] = {
      rate: failover.calls / failoverSeconds,
      p50: percentile(failover.latenciesMs, 50),
      p99: percentile(failover.latenciesMs, 99),
      errors: failover.errors.length,
    };

    const raw = summary["raw connect"]!;
    const grpcJsResult = summary["grpc-js round_robin"]!;
    console.log(`\nmesh client benchmark: ${rounds} rounds x ${seconds} s per client, ${concurrency} calls in flight, 3 echo processes (server tracing off)`);
    console.log(`machine: ${os.cpus().length} x ${os.cpus()[0]?.model ?? "cpu"}, node ${process.version}\n`);
    console.log("| client | calls/s | p50 ms | p99 ms | errors | rate vs raw | rate vs grpc-js |");
    console.log("|---|---|---|---|---|---|---|");
    for (const [name, r] of Object.entries(summary)) {
      console.log(`| ${name} | ${r.rate.toFixed(0)} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${r.errors} | ${(r.rate / raw.rate).toFixed(2)} | ${(r.rate / grpcJsResult.rate).toFixed(2)} |`);
    }
    const tracedRaw = summary["raw connect + client span, tracing on"]!;
    const tracedMesh = summary["mesh round_robin, tracing on"]!;
    console.log(`\ntracing on, mesh vs raw connect with the same span: ${(tracedMesh.rate / tracedRaw.rate).toFixed(2)}`);
    mesh.close();
    meshEwma.close();
    meshNoChain.close();
    grpcJs.close();
  } finally {
    await Promise.all(instances.map(killProcess));
  }
  process.exit(0);
}

await main();
