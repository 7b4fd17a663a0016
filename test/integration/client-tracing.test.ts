import assert from "node:assert/strict";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { createClient, type ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { context, propagation, ROOT_CONTEXT, trace, TraceFlags } from "@opentelemetry/api";
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from "@opentelemetry/sdk-trace";
import { EchoService } from "../../gen/meshkit/echo/v1/echo_pb.js";
import { createMeshTransport, staticResolver, type MeshTransport } from "../../src/client/index.js";

/**
 * The trace context a mesh call's attempts carry, in-process (no Jaeger): with no SDK the call's
 * span is the no-op tracer's and the caller's own context goes on (the mesh skips the context
 * copy for it); with an SDK the client span's. Global OpenTelemetry state is set here and
 * removed after; the SDK case runs last, since the client's tracer keeps the SDK's once it has
 * seen it.
 */
describe("mesh client tracing: the trace context of each attempt", function () {
  this.timeout(30_000);
  let server: http2.Http2Server;
  let transport: MeshTransport;
  const received: (string | null)[] = [];
  const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
  const spanId = "00f067aa0ba902b7";
  const callerContext = trace.setSpanContext(ROOT_CONTEXT, { traceId, spanId, traceFlags: TraceFlags.SAMPLED, isRemote: true });

  before(async () => {
    const routes = (router: ConnectRouter) =>
      router.service(EchoService, {
        echo(request, handler) {
          received.push(handler.requestHeader.get("traceparent"));
          return { message: request.message, instanceId: "in-test" };
        },
      });
    server = http2.createServer(connectNodeAdapter({ routes }));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as AddressInfo).port;
    transport = createMeshTransport({ service: "echo-tracing", resolver: staticResolver([{ address: "127.0.0.1", port }]), balancer: "round_robin", metrics: false });
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  });
  after(async () => {
    transport.close();
    trace.disable();
    propagation.disable();
    context.disable();
    await new Promise((resolve) => server.close(resolve));
  });

  it("without an SDK, sends the caller's trace context, and none when the caller has none", async () => {
    const client = createClient(EchoService, transport);
    received.length = 0;
    await context.with(callerContext, () => client.echo({ message: "a" }));
    await client.echo({ message: "b" });
    assert.deepEqual(received, [`00-${traceId}-${spanId}-01`, null]);
  });

  it("with an SDK, sends the client span's context and records each attempt on the span", async () => {
    const exporter = new InMemorySpanExporter();
    const provider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] });
    trace.setGlobalTracerProvider(provider);
    try {
      const client = createClient(EchoService, transport);
      received.length = 0;
      await context.with(callerContext, () => client.echo({ message: "a" }));
      const [span] = exporter.getFinishedSpans();
      assert.ok(span);
      assert.equal(span.name, "meshkit.echo.v1.EchoService/Echo");
      assert.equal(span.spanContext().traceId, traceId);
      assert.equal(span.parentSpanContext?.spanId, spanId);
      assert.deepEqual(received, [`00-${traceId}-${span.spanContext().spanId}-01`]);
      assert.equal(span.attributes["meshkit.service"], "echo-tracing");
      assert.equal(span.attributes["meshkit.attempts"], 1);
      assert.deepEqual(
        span.events.map((event) => [event.name, event.attributes?.["meshkit.attempt.kind"], event.attributes?.["rpc.grpc.status_code"]]),
        [["attempt", "first", 0]],
      );
    } finally {
      await provider.shutdown();
    }
  });
});
