import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { Writable } from "node:stream";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { parseTimeout } from "@connectrpc/connect/protocol-grpc";
import { Registry } from "prom-client";
import { EchoService } from "../../gen/meshkit/echo/v1/echo_pb.js";
import { createMeshTransport, staticResolver, type MeshTransport } from "../../src/client/index.js";
import { createLogger } from "../../src/platform/log.js";
import { startServerHost, type ServerHost } from "../../src/server/host.js";
import { serverDeadline } from "../../src/server/interceptors/deadline.js";
import { serverTracing } from "../../src/server/interceptors/tracing.js";
import { eventually, jaegerQueryUrl } from "../support/infra.js";
import { startTestTelemetry } from "../support/telemetry.js";

interface JaegerSpan {
  spanID: string;
  operationName: string;
  references: { refType: string; spanID: string }[];
  tags: { key: string; value: unknown }[];
}

describe("server-streaming handlers keep the call's deadline and trace context in their body", function () {
  this.timeout(60_000);
  const hosts: ServerHost[] = [];
  let onward: MeshTransport | undefined;

  before(() => startTestTelemetry());
  after(async () => {
    onward?.close();
    await Promise.all(hosts.map((host) => host.drain(1000)));
  });

  it("makes each tick's onward mesh calls children of the stream's server span, within its deadline, and logs with its trace id", async () => {
    // The onward service: records the deadline each call arrived with.
    const arrivedTimeoutsMs: number[] = [];
    const target = await startServerHost({
      interceptors: [serverTracing()],
      routes: (router) =>
        router.service(EchoService, {
          echo(request, context) {
            arrivedTimeoutsMs.push(parseTimeout(context.requestHeader.get("grpc-timeout") ?? "", Number.MAX_SAFE_INTEGER).timeoutMs ?? Infinity);
            return { message: request.message, instanceId: "target" };
          },
        }),
    });
    hosts.push(target);
    onward = createMeshTransport({ service: "stream-context-target", resolver: staticResolver([{ address: "127.0.0.1", port: target.port }]), metrics: new Registry(), retry: false });
    const onwardClient = createClient(EchoService, onward);

    // The streaming service: each tick waits, calls onward through the mesh client, and logs.
    const logLines: Record<string, unknown>[] = [];
    const log = createLogger("stream-context", {}, new Writable({ write: (chunk: Buffer, _encoding, done) => (logLines.push(JSON.parse(chunk.toString()) as Record<string, unknown>), done()) }));
    const streaming = await startServerHost({
      interceptors: [serverTracing(), serverDeadline()],
      routes: (router) =>
        router.service(EchoService, {
          async *echoStream(request) {
            for (let sequence = 1; sequence <= request.count; sequence++) {
              await sleep(20); // past the first await: the generator body is resumed by connect's writer
              const reply = await onwardClient.echo({ message: `tick ${sequence}` });
              log.info({ sequence }, "tick");
              yield { message: reply.message, sequence, instanceId: "streaming" };
            }
          },
        }),
    });
    hosts.push(streaming);

    // The caller's own trace context, made up here so the trace can be fetched by its id.
    const traceId = randomBytes(16).toString("hex");
    const callerSpanId = randomBytes(8).toString("hex");
    const caller = createClient(EchoService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${streaming.port}` }));
    const sequences: number[] = [];
    for await (const part of caller.echoStream({ message: "m", count: 3 }, { timeoutMs: 4000, headers: { traceparent: `00-${traceId}-${callerSpanId}-01` } })) {
      sequences.push(part.sequence);
    }
    assert.deepEqual(sequences, [1, 2, 3]);

    // The deadline: what is left of the caller's 4 s, not the mesh client's own 10 s default.
    assert.equal(arrivedTimeoutsMs.length, 3);
    for (const timeoutMs of arrivedTimeoutsMs) assert.ok(timeoutMs <= 4000, `an onward call arrived with ${timeoutMs} ms left, more than the caller's 4000`);

    // The logs: each tick's line carries the trace id.
    assert.deepEqual(logLines.map((line) => [line.msg, line.trace_id]), [1, 2, 3].map(() => ["tick", traceId]));

    // The trace, read back from Jaeger: caller -> EchoStream server span -> 3 Echo client spans -> 3 Echo server spans.
    const spans = await eventually(
      "the stream's trace with its 3 onward calls in Jaeger",
      async () => {
        const response = await fetch(`${jaegerQueryUrl}/api/traces/${traceId}`);
        if (!response.ok) return undefined;
        const body = (await response.json()) as { data: { spans: JaegerSpan[] }[] };
        const found = body.data[0]?.spans ?? [];
        return found.filter((span) => span.operationName === "meshkit.echo.v1.EchoService/Echo").length === 6 ? found : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 500 },
    );
    const kind = (span: JaegerSpan) => span.tags.find((tag) => tag.key === "span.kind")?.value;
    const parent = (span: JaegerSpan) => span.references.find((reference) => reference.refType === "CHILD_OF")?.spanID;
    const streamSpan = spans.find((span) => span.operationName === "meshkit.echo.v1.EchoService/EchoStream");
    assert.ok(streamSpan, "no EchoStream server span in the trace");
    assert.equal(parent(streamSpan), callerSpanId);
    const onwardClientSpans = spans.filter((span) => span.operationName === "meshkit.echo.v1.EchoService/Echo" && kind(span) === "client");
    const onwardServerSpans = spans.filter((span) => span.operationName === "meshkit.echo.v1.EchoService/Echo" && kind(span) === "server");
    assert.equal(onwardClientSpans.length, 3);
    for (const span of onwardClientSpans) assert.equal(parent(span), streamSpan.spanID, "an onward call is not a child of the stream's server span");
    assert.deepEqual(onwardServerSpans.map(parent).sort(), onwardClientSpans.map((span) => span.spanID).sort());
  });
});
