/**
 * What each server interceptor costs per call, apart from the network: the host's interceptors
 * (the same factories runService uses) around a trivial echo, driven in-process at a steady
 * BENCH_PACED_RATE calls/s (default 2000), the sets taking turns for BENCH_COST_ROUNDS rounds
 * (default 7) of 0.5 s each, the median round per set, CPU of the whole process per call
 * (span export to the running Jaeger included: the OpenTelemetry SDK is started first, sampling
 * every span, as the echo service does). Run by bench/calls-server.bench.ts in a process of its own
 * (the SDK is process-global); prints one JSON line: { "<set>": microseconds per call, ... }.
 */
import { startTelemetry } from "../../src/platform/telemetry.js";

process.env.OTEL_TRACES_SAMPLER = "always_on";
const telemetry = startTelemetry({ serviceName: `interceptor-costs-${process.pid}` });
const { create } = await import("@bufbuild/protobuf");
const { createContextValues } = await import("@connectrpc/connect");
type Interceptor = import("@connectrpc/connect").Interceptor;
type UnaryRequest = import("@connectrpc/connect").UnaryRequest;
type UnaryResponse = import("@connectrpc/connect").UnaryResponse;
const { createValidateInterceptor } = await import("@connectrpc/validate");
const { Registry } = await import("prom-client");
const { serverTracing } = await import("../../src/server/interceptors/tracing.js");
const { serverMetrics } = await import("../../src/server/interceptors/metrics.js");
const { errorMapping } = await import("../../src/server/interceptors/errors.js");
const { serverDeadline } = await import("../../src/server/interceptors/deadline.js");
const { unaryValidation } = await import("../../src/server/interceptors/validation.js");
const { fuseObservers } = await import("../../src/server/interceptors/observe-calls.js");
const { createLogger } = await import("../../src/platform/log.js");
const { EchoService, EchoRequestSchema, EchoResponseSchema } = await import("../../gen/meshkit/echo/v1/echo_pb.js");

const rate = Number(process.env.BENCH_PACED_RATE ?? 2000);
const interceptors: Record<string, Interceptor> = {
  tracing: serverTracing(),
  metrics: serverMetrics(new Registry()),
  "error mapping": errorMapping(createLogger("interceptor-costs")),
  deadline: serverDeadline(),
  validation: unaryValidation(createValidateInterceptor()),
};
const sets: Record<string, string[]> = {
  none: [],
  ...Object.fromEntries(Object.keys(interceptors).map((name) => [name, [name]])),
  "all but tracing": ["metrics", "error mapping", "deadline", "validation"],
  all: ["tracing", "metrics", "error mapping", "deadline", "validation"],
};

const method = EchoService.method.echo;
const message = create(EchoRequestSchema, { message: "bench" });
// What ghz sends with every call (a 20 s deadline by default).
const header = new Headers({ "content-type": "application/grpc", te: "trailers", "grpc-timeout": "20S", "user-agent": "grpc-go/1.56.3" });
const rounds = Number(process.env.BENCH_COST_ROUNDS ?? 7);
const invoke = async (request: UnaryRequest | import("@connectrpc/connect").StreamRequest): Promise<UnaryResponse> =>
  ({
    stream: false,
    service: EchoService,
    method,
    header: new Headers(),
    trailer: new Headers(),
    message: create(EchoResponseSchema, { message: ((request as UnaryRequest).message as unknown as { message: string }).message }),
  }) as UnaryResponse;
const calls = Object.fromEntries(
  Object.entries(sets).map(([name, members]) => {
    // Fused as the host fuses them (adjacent observers run as one layer).
    const chain = fuseObservers(members.map((member) => interceptors[member]!)).reduceRight((next, interceptor) => interceptor(next), invoke as Parameters<Interceptor>[0]);
    const call = () =>
      chain({ stream: false, service: EchoService, method, requestMethod: "POST", url: "http://bench/x", signal: new AbortController().signal, header, contextValues: createContextValues(), message } as UnaryRequest);
    return [name, call];
  }),
);
const batch = rate / 20; // one batch every 50 ms
const { trace } = await import("@opentelemetry/api");
const provider = trace.getTracerProvider() as { getDelegate?(): { forceFlush?(): Promise<void> } };
/**
 * CPU per call of `call`, paced at `rate` calls/s for `seconds`. Each set pays for its own
 * garbage and spans: the heap is collected before the window (when run with --expose-gc), and the
 * spans still buffered are exported inside it, so neither is billed to the set that runs next.
 */
const run = async (call: () => Promise<unknown>, seconds: number) => {
  let count = 0;
  (globalThis as { gc?: () => void }).gc?.();
  const started = process.cpuUsage();
  for (let tick = 0; tick < seconds * 20; tick++) {
    await Promise.all(Array.from({ length: batch }, call));
    count += batch;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await provider.getDelegate?.().forceFlush?.();
  const used = process.cpuUsage(started);
  return (used.user + used.system) / count;
};
for (const call of Object.values(calls)) await run(call, 0.5); // warm-up
// The sets take turns, round after round, so that a neighbour's burst falls on all of them
// alike; each set's median round counts.
const samples: Record<string, number[]> = Object.fromEntries(Object.keys(sets).map((name) => [name, []]));
for (let round = 0; round < rounds; round++) for (const [name, call] of Object.entries(calls)) samples[name]!.push(await run(call, 0.5));
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const results = Object.fromEntries(Object.entries(samples).map(([name, values]) => [name, median(values)]));
await telemetry.shutdown();
console.log(JSON.stringify(results));
process.exit(0);
