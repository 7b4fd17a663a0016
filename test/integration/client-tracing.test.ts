import assert from "node:assert/strict";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { createClient, type ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { context, propagation, ROOT_CONTEXT, trace, TraceFlags } from "@opentelemetry/api";
import { EchoService } from "../../gen/meshkit/echo/v1/echo_pb.js";
import { createMeshTransport, staticResolver, type MeshTransport } from "../../src/client/index.js";

/**
 * The trace context a mesh call's attempts carry when no OpenTelemetry SDK is installed, in-process
 * (no Jaeger): the call's span is then the no-op tracer's, and the mesh skips the per-call context
 * copy for it, so this checks that the caller's own trace context still goes on. (With an SDK, the
 * client span's context and its attempt events are read back from Jaeger by resilience-features
 * and mesh-client.) It registers only the global context manager and propagator that are not
 * registered yet, and removes only those; when another suite of the same mocha process has
 * installed an SDK already, there is no no-SDK case to check, and it skips.
 */
describe("mesh client tracing: the trace context of each attempt", function () {
  this.timeout(30_000);
  let server: http2.Http2Server;
  let transport: MeshTransport;
  const received: (string | null)[] = [];
  let ownContextManager = false;
  let ownPropagator = false;
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
    ownContextManager = context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    ownPropagator = propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  });
  after(async () => {
    transport.close();
    if (ownPropagator) propagation.disable();
    if (ownContextManager) context.disable();
    await new Promise((resolve) => server.close(resolve));
  });

  it("without an SDK, sends the caller's trace context, and none when the caller has none", async function () {
    if (trace.getTracer("probe").startSpan("probe").isRecording()) this.skip();
    const client = createClient(EchoService, transport);
    received.length = 0;
    await context.with(callerContext, () => client.echo({ message: "a" }));
    await client.echo({ message: "b" });
    assert.deepEqual(received, [`00-${traceId}-${spanId}-01`, null]);
  });
});
