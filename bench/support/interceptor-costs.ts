/**
 * What each server interceptor costs per call, apart from the network: the host's interceptors
 * (the same factories runService uses) around a trivial echo, driven in-process in a closed loop
 * (BENCH_COST_CONCURRENCY calls in flight, default 32, as ghz drives the servers), the sets taking
 * turns for BENCH_COST_ROUNDS rounds (default 7) of BENCH_COST_CALLS calls each (default 20,000),
 * the median round per set, CPU of the whole process per call. Span export to the running Jaeger
 * is included: the OpenTelemetry SDK is started first by the echo service's startTelemetry,
 * sampling every span, and a round runs in slices of 5,000 calls, each ending with a flush, so
 * every span a set made is encoded and sent inside its own round. The queue
 * (OTEL_BSP_MAX_QUEUE_SIZE) holds two slices, so none is dropped: the SDK's default of 2,048
 * would drop most of a closed loop's spans and bill less.
 *
 * Why a closed loop: a loaded server runs hot, as this loop does. This table used to pace the
 * calls at 2,000/s in bursts every 50 ms, and the bursts ran on cold caches after each pause: it
 * billed protovalidate 11 us per call, where a hot loop measures 0.25 us, and tracing 46-74 us,
 * against about 19 us in the server under ghz's load (docs/benchmarks.md, bench-calls, "Method").
 *
 * Run by bench/calls-server.bench.ts in a process of its own (the SDK is process-global); prints
 * one JSON line: { "<set>": microseconds per call, ... }.
 */
import { startTelemetry } from "../../src/platform/telemetry.js";

const callsPerRound = Number(process.env.BENCH_COST_CALLS ?? 20_000);
const concurrency = Number(process.env.BENCH_COST_CONCURRENCY ?? 32);
const flushEvery = 5_000;
// The echo service's telemetry (startTelemetry), every span sampled, with a queue that holds a slice's spans.
process.env.OTEL_TRACES_SAMPLER = "always_on";
process.env.OTEL_BSP_MAX_QUEUE_SIZE = String(2 * flushEvery);
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
const { recordCallDeadline } = await import("../../src/server/call-deadline.js");
const { EchoService, EchoRequestSchema, EchoResponseSchema } = await import("../../gen/meshkit/echo/v1/echo_pb.js");

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
    const call = () => {
      // As the host's lean gRPC path hands a call on: its deadline already read (call-deadline.ts).
      const contextValues = createContextValues();
      recordCallDeadline(contextValues, performance.now() + 20_000);
      return chain({ stream: false, service: EchoService, method, requestMethod: "POST", url: "http://bench/x", signal: new AbortController().signal, header, contextValues, message } as UnaryRequest);
    };
    return [name, call];
  }),
);
const { trace } = await import("@opentelemetry/api");
const provider = trace.getTracerProvider() as { getDelegate?(): { forceFlush?(): Promise<void> } };
/**
 * CPU per call of `call`, `count` calls with `concurrency` in flight. Each set pays for its own
 * garbage and spans: the heap is collected before the round (when run with --expose-gc), and its
 * spans are exported inside it, so neither is billed to the set that runs next.
 */
const run = async (call: () => Promise<unknown>, count: number) => {
  (globalThis as { gc?: () => void }).gc?.();
  const started = process.cpuUsage();
  // In slices, each flushed: a flush exports its batches at once, and the exporter takes at most
  // 30 concurrent exports (of 512 spans each).
  for (let done = 0; done < count; done += flushEvery) {
    const slice = Math.min(flushEvery, count - done);
    let issued = 0;
    const worker = async () => {
      while (issued < slice) {
        issued++;
        await call();
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    await provider.getDelegate?.().forceFlush?.();
  }
  const used = process.cpuUsage(started);
  return (used.user + used.system) / count;
};
for (const call of Object.values(calls)) await run(call, callsPerRound / 4); // warm-up: the JIT's tiers
// The sets take turns, round after round, so that a neighbour's burst falls on all of them
// alike; each set's median round counts.
const samples: Record<string, number[]> = Object.fromEntries(Object.keys(sets).map((name) => [name, []]));
for (let round = 0; round < rounds; round++) for (const [name, call] of Object.entries(calls)) samples[name]!.push(await run(call, callsPerRound));
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const results = Object.fromEntries(Object.entries(samples).map(([name, values]) => [name, median(values)]));
await telemetry.shutdown();
console.log(JSON.stringify(results));
process.exit(0);
