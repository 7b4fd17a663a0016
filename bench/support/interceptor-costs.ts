/**
 * What each server interceptor costs per call, apart from the network: the host's interceptors
 * (the same factories runService uses) around a trivial echo, driven in-process at a steady
 * BENCH_PACED_RATE calls/s (default 2000) for 2 s per set, CPU of the whole process per call
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
const results: Record<string, number> = {};
for (const [name, members] of Object.entries(sets)) {
  const invoke = async (request: UnaryRequest | import("@connectrpc/connect").StreamRequest): Promise<UnaryResponse> =>
    ({
      stream: false,
      service: EchoService,
      method,
      header: new Headers(),
      trailer: new Headers(),
      message: create(EchoResponseSchema, { message: ((request as UnaryRequest).message as unknown as { message: string }).message }),
    }) as UnaryResponse;
  const chain = members.map((member) => interceptors[member]!).reduceRight((next, interceptor) => interceptor(next), invoke as Parameters<Interceptor>[0]);
  const call = () =>
    chain({ stream: false, service: EchoService, method, requestMethod: "POST", url: "http://bench/x", signal: new AbortController().signal, header, contextValues: createContextValues(), message } as UnaryRequest);
  const batch = rate / 20; // one batch every 50 ms
  const run = async (seconds: number) => {
    let calls = 0;
    const started = process.cpuUsage();
    for (let tick = 0; tick < seconds * 20; tick++) {
      await Promise.all(Array.from({ length: batch }, call));
      calls += batch;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const used = process.cpuUsage(started);
    return (used.user + used.system) / calls;
  };
  await run(0.5); // warm-up
  results[name] = await run(2);
}
await telemetry.shutdown();
console.log(JSON.stringify(results));
process.exit(0);
