import assert from "node:assert/strict";
import { runTelemetryProbe, telemetryModuleUrl } from "../support/telemetry-probe.js";

/**
 * Runs in a child process (the OpenTelemetry SDK is process-global): an OTLP/gRPC endpoint on
 * Node's HTTP/2 server that answers every Export with an empty response and records when each
 * arrived, `startTelemetry` pointed at it, three spans ended at once, and a wait of one second
 * before shutting down. Prints the arrivals (ms after the spans ended) as JSON.
 */
const probe = `
import http2 from "node:http2";
const arrivals = [];
let ended = 0;
const server = http2.createServer();
server.on("stream", (stream, headers) => {
  stream.resume();
  stream.on("end", () => {
    if (headers[":path"] === "/opentelemetry.proto.collector.trace.v1.TraceService/Export") arrivals.push(Math.round(performance.now() - ended));
    stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
    stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
    stream.end(Buffer.alloc(5)); // an empty ExportTraceServiceResponse
  });
});
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const { startTelemetry } = await import(${JSON.stringify(telemetryModuleUrl)});
const { trace } = await import("@opentelemetry/api");
const telemetry = startTelemetry({ serviceName: "batching-probe", otlpEndpoint: "http://127.0.0.1:" + server.address().port });
const tracer = trace.getTracer("probe");
ended = performance.now();
for (let i = 0; i < 3; i++) tracer.startSpan("span " + i).end();
await new Promise((resolve) => setTimeout(resolve, 1000));
console.log(JSON.stringify(arrivals));
await telemetry.shutdown();
process.exit(0);
`;

function exportArrivals(env: Record<string, string>): Promise<number[]> {
  return runTelemetryProbe<number[]>(probe, env);
}

describe("startTelemetry batches spans as the OTEL_BSP_* variables say", function () {
  this.timeout(30_000);

  it("sends what ended in one request, after its 500 ms delay, when nothing is set", async () => {
    const arrivals = await exportArrivals({});
    assert.equal(arrivals.length, 1, `export requests at ${arrivals.join(", ")} ms`);
    assert.ok(arrivals[0]! >= 400, `the batch went out ${arrivals[0]} ms after the spans ended, before the 500 ms delay`);
  });

  it("honours OTEL_BSP_MAX_EXPORT_BATCH_SIZE and OTEL_BSP_SCHEDULE_DELAY", async () => {
    // Batches of one span and a delay of a minute: each span goes out on its own, at once.
    const arrivals = await exportArrivals({ OTEL_BSP_MAX_EXPORT_BATCH_SIZE: "1", OTEL_BSP_SCHEDULE_DELAY: "60000" });
    assert.equal(arrivals.length, 3, `export requests at ${arrivals.join(", ")} ms`);
  });
});
