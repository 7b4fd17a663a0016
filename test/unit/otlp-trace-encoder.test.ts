import assert from "node:assert/strict";
import { context, SpanKind, SpanStatusCode, TraceFlags, type Link } from "@opentelemetry/api";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { ProtobufTraceSerializer } from "@opentelemetry/otlp-transformer";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider, type ReadableSpan } from "@opentelemetry/sdk-trace";
import { encodeTraceExportRequest } from "../../src/platform/otlp-trace-encoder.js";

/**
 * encodeTraceExportRequest must write exactly the bytes of OpenTelemetry's own protobuf
 * serializer: both encode the same real SDK spans, covering every field and value kind.
 */
describe("encodeTraceExportRequest", () => {
  const recorded = (limits = {}, attributes: Record<string, string> = { "service.name": "encoder-test", "service.instance.id": "i-1" }) => {
    const exporter = new InMemorySpanExporter();
    const provider = new TracerProvider({
      resource: resourceFromAttributes(attributes),
      spanProcessors: [new SimpleSpanProcessor({ exporter })],
      spanLimits: limits,
    });
    return { provider, spans: () => exporter.getFinishedSpans() };
  };
  const sameBytes = (spans: readonly ReadableSpan[]) => {
    const ours = encodeTraceExportRequest(spans);
    const theirs = ProtobufTraceSerializer.serializeRequest([...spans])!;
    assert.ok(ours.length > 0);
    assert.equal(Buffer.from(ours).toString("hex"), Buffer.from(theirs).toString("hex"));
    return ours;
  };

  it("a server span as the tracing interceptor makes it", () => {
    const { provider, spans } = recorded();
    const span = provider.getTracer("meshkit-server").startSpan("meshkit.echo.v1.EchoService/Echo", {
      kind: SpanKind.SERVER,
      attributes: { "rpc.system": "grpc", "rpc.service": "meshkit.echo.v1.EchoService", "rpc.method": "Echo" },
    });
    span.setAttribute("rpc.grpc.status_code", 0);
    span.end();
    sameBytes(spans());
  });

  it("every attribute kind, remote parents with trace state, events, links, an error status and dropped counts", () => {
    const { provider, spans } = recorded({ attributeCountLimit: 12, eventCountLimit: 2, linkCountLimit: 1 });
    const tracer = provider.getTracer("encoder-test", "1.2.3", { schemaUrl: "https://opentelemetry.io/schemas/1.24.0" });
    const parent = new W3CTraceContextPropagator().extract(
      context.active(),
      { traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", tracestate: "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7" },
      { get: (carrier, key) => carrier[key as keyof typeof carrier], keys: (carrier) => Object.keys(carrier) },
    );
    const link: Link = {
      context: { traceId: "4bf92f3577b34da6a3ce929d0e0e4736", spanId: "00f067aa0ba902b7", traceFlags: TraceFlags.SAMPLED, isRemote: true },
      attributes: { "link.kind": "follows", weight: 2 },
    };
    const span = tracer.startSpan("orders.v1.OrderService/PlaceOrder — café ☕", { kind: SpanKind.CLIENT, links: [link, link] }, parent);
    span.setAttributes({
      ascii: "plain",
      unicode: "Grüße, 世界 🌍",
      long: "x".repeat(300),
      "exactly-42": "y".repeat(42),
      "exactly-43": "z".repeat(43),
      yes: true,
      no: false,
      zero: 0,
      small: 7,
      negative: -5,
      large: 2 ** 40 + 3,
      fraction: 0.25,
      strings: ["a", "b", "ç"],
      numbers: [1, 2.5, -3],
      "over the limit": "dropped",
      "over the limit too": "dropped",
    });
    span.addEvent("retry", { attempt: 2, reason: "UNAVAILABLE" });
    span.recordException(new Error("boom: the instance went away"));
    span.addEvent("third, dropped");
    span.setStatus({ code: SpanStatusCode.ERROR, message: "instance failure" });
    span.end();
    const [recordedSpan] = spans();
    assert.ok(recordedSpan!.droppedAttributesCount > 0 && recordedSpan!.droppedEventsCount > 0 && recordedSpan!.droppedLinksCount > 0);
    sameBytes(spans());
  });

  it("many spans under several resources and scopes, a message past 16 KiB, and every kind", () => {
    const first = recorded();
    const second = recorded({}, { "service.name": "other", region: "eu-west-1" });
    const kinds = [SpanKind.INTERNAL, SpanKind.SERVER, SpanKind.CLIENT, SpanKind.PRODUCER, SpanKind.CONSUMER];
    for (let i = 0; i < 150; i++) {
      for (const { provider } of [first, second]) {
        const tracer = provider.getTracer(i % 2 ? "scope-a" : "scope-b", i % 3 ? undefined : "0.1.0");
        const span = tracer.startSpan(`span ${i}`, { kind: kinds[i % kinds.length]!, attributes: { index: i, note: "n".repeat(i) } });
        if (i % 7 === 0) span.setStatus({ code: SpanStatusCode.OK });
        span.end();
      }
    }
    const all = [...first.spans(), ...second.spans()].sort(() => 0.5 - Math.random());
    assert.ok(sameBytes(all).length > 16 * 1024);
  });

  it("a span not ended yet (end time zero) encodes as the library encodes it", () => {
    const { provider } = recorded();
    sameBytes([provider.getTracer("t").startSpan("open") as unknown as ReadableSpan]);
  });
});
