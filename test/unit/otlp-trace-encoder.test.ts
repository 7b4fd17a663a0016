import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { context, SpanKind, SpanStatusCode, TraceFlags, type Link } from "@opentelemetry/api";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { ProtobufTraceSerializer } from "@opentelemetry/otlp-transformer";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider, type ReadableSpan } from "@opentelemetry/sdk-trace";
import { encodeTraceExportRequest, otlpTransformerVersionChecked } from "../../src/platform/otlp-trace-encoder.js";
import { OtlpGrpcTraceExporter, otlpTraceEncoderFromEnv, traceSerializer } from "../../src/platform/otlp-trace-exporter.js";

const projectRoot = path.resolve(import.meta.dirname, "../..");

/**
 * encodeTraceExportRequest must write exactly the bytes of OpenTelemetry's own protobuf
 * serializer: both encode the same real SDK spans, covering every field and value kind.
 */
describe("encodeTraceExportRequest", () => {
  const recorded = (limits = {}, attributes: Record<string, unknown> = { "service.name": "encoder-test", "service.instance.id": "i-1" }, resourceSchemaUrl?: string) => {
    const exporter = new InMemorySpanExporter();
    const provider = new TracerProvider({
      resource: resourceFromAttributes(attributes as Parameters<typeof resourceFromAttributes>[0], resourceSchemaUrl ? { schemaUrl: resourceSchemaUrl } : {}),
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

  /**
   * `span` with some of its fields replaced: what the SDK's attribute cleaning would not let
   * through (bytes, nested values) or its API cannot yet set (scope attributes), but the OTLP
   * model has and both serializers write.
   */
  const withFields = (span: ReadableSpan, fields: Record<string, unknown>): ReadableSpan => Object.assign(Object.create(span) as ReadableSpan, fields);
  const oneSpan = (resourceAttributes?: Record<string, unknown>, resourceSchemaUrl?: string) => {
    const { provider, spans } = recorded({}, resourceAttributes, resourceSchemaUrl);
    provider.getTracer("encoder-test", "1.0.0").startSpan("one").end();
    return spans()[0]!;
  };

  it("scope attributes and a scope's dropped attribute count", () => {
    const span = oneSpan();
    const scope = { name: "scoped", version: "2.0.0", schemaUrl: "https://opentelemetry.io/schemas/1.26.0", attributes: { "scope.kind": "library", level: 3, on: true }, droppedAttributesCount: 2 };
    const withScope = withFields(span, { instrumentationScope: scope });
    const ours = sameBytes([withScope]);
    // Not vacuous: the scope's attributes are in the request.
    assert.ok(Buffer.from(ours).includes("scope.kind"));
    assert.notEqual(Buffer.from(ours).toString("hex"), Buffer.from(encodeTraceExportRequest([withFields(span, { instrumentationScope: { ...scope, attributes: {} } })])).toString("hex"));
  });

  it("a resource's schemaUrl, and a resource without one", () => {
    const withSchema = oneSpan(undefined, "https://opentelemetry.io/schemas/1.24.0");
    assert.equal(withSchema.resource.schemaUrl, "https://opentelemetry.io/schemas/1.24.0");
    assert.ok(Buffer.from(sameBytes([withSchema])).includes("https://opentelemetry.io/schemas/1.24.0"));
    const without = oneSpan();
    assert.equal(without.resource.schemaUrl, undefined);
    sameBytes([without]);
    // Two resources, one with a schemaUrl, in one request.
    sameBytes([withSchema, without]);
  });

  it("bytes values, on a span, an event, a link and a resource", () => {
    const blob = new Uint8Array([0, 1, 127, 128, 255]);
    const big = new Uint8Array(300).map((_, i) => i & 0xff);
    const span = oneSpan({ "service.name": "encoder-test", "resource.blob": blob });
    const withBytes = withFields(span, {
      attributes: { blob, empty: new Uint8Array(0), big, buffer: Buffer.from("buffer bytes"), list: [blob, "text"] },
      events: [{ name: "with bytes", time: span.startTime, attributes: { payload: blob }, droppedAttributesCount: 0 }],
      links: [{ context: { traceId: "4bf92f3577b34da6a3ce929d0e0e4736", spanId: "00f067aa0ba902b7", traceFlags: TraceFlags.SAMPLED }, attributes: { id: blob } }],
    });
    const ours = sameBytes([withBytes]);
    assert.ok(Buffer.from(ours).includes(Buffer.from(big)));
  });

  it("nested values: key-value lists, arrays of arrays, empty ones, null and undefined inside", () => {
    const span = oneSpan({ "service.name": "encoder-test", "resource.nested": { region: "eu", zones: ["a", "b"] } });
    const nested = withFields(span, {
      attributes: {
        map: { a: 1, b: "two", c: { d: [true, 2.5, { e: "deep" }] } },
        matrix: [[1, 2], [3], []],
        mixed: [1, "x", false, 0.5, null, undefined, { k: "v" }],
        emptyMap: {},
        emptyList: [],
        nothing: null,
        unset: undefined,
        long: { text: "l".repeat(200), unicode: "Grüße 🌍" },
      },
      events: [{ name: "nested", time: span.startTime, attributes: { where: { file: "a.ts", line: 7 } } }],
    });
    sameBytes([nested]);
  });

  it("a span not ended yet (end time zero) encodes as the library encodes it", () => {
    const { provider } = recorded();
    sameBytes([provider.getTracer("t").startSpan("open") as unknown as ReadableSpan]);
  });
});

/**
 * The encoder was checked against one version of @opentelemetry/otlp-transformer: a bump must
 * come with a new check (the tests above, and a reading of the library's serializer for what
 * they do not cover), so these fail until `otlpTransformerVersionChecked` is updated.
 */
describe("the OTLP encoder's pin to @opentelemetry/otlp-transformer", () => {
  it("package.json pins exactly the version the encoder was checked against", () => {
    const manifest = JSON.parse(readFileSync(path.join(projectRoot, "package.json"), "utf8")) as { dependencies: Record<string, string> };
    assert.equal(manifest.dependencies["@opentelemetry/otlp-transformer"], otlpTransformerVersionChecked, "pin it exactly (no ^ or ~), or re-check the encoder and update otlpTransformerVersionChecked");
  });

  it("the installed version is the one the encoder was checked against", () => {
    const entry = createRequire(import.meta.url).resolve("@opentelemetry/otlp-transformer");
    const installed = JSON.parse(readFileSync(path.join(path.dirname(entry), "..", "package.json"), "utf8")) as { name: string; version: string };
    assert.equal(installed.name, "@opentelemetry/otlp-transformer");
    assert.equal(installed.version, otlpTransformerVersionChecked, "re-check the encoder against this version, then update otlpTransformerVersionChecked");
  });
});

describe("the switch back to OpenTelemetry's serializer", () => {
  const saved = process.env.MESHKIT_OTLP_TRACE_ENCODER;
  afterEach(() => {
    if (saved === undefined) delete process.env.MESHKIT_OTLP_TRACE_ENCODER;
    else process.env.MESHKIT_OTLP_TRACE_ENCODER = saved;
  });

  it("MESHKIT_OTLP_TRACE_ENCODER picks the encoder: meshkit by default, opentelemetry when asked", () => {
    delete process.env.MESHKIT_OTLP_TRACE_ENCODER;
    assert.equal(otlpTraceEncoderFromEnv(), "meshkit");
    for (const [value, expected] of [["opentelemetry", "opentelemetry"], [" OpenTelemetry ", "opentelemetry"], ["meshkit", "meshkit"], ["", "meshkit"], ["protobufjs", "meshkit"]] as const) {
      process.env.MESHKIT_OTLP_TRACE_ENCODER = value;
      assert.equal(otlpTraceEncoderFromEnv(), expected, JSON.stringify(value));
    }
  });

  it("the library's serializer is the library's own object; ours writes through encodeTraceExportRequest", () => {
    assert.equal(traceSerializer("opentelemetry"), ProtobufTraceSerializer);
    assert.notEqual(traceSerializer("meshkit"), ProtobufTraceSerializer);
    assert.equal(traceSerializer("meshkit").deserializeResponse, traceSerializer("meshkit").deserializeResponse);
  });

  it("the exporter takes the encoder from its option, else from the environment", async () => {
    process.env.MESHKIT_OTLP_TRACE_ENCODER = "opentelemetry";
    const fromEnv = new OtlpGrpcTraceExporter({ url: "http://127.0.0.1:1" });
    const fromOption = new OtlpGrpcTraceExporter({ url: "http://127.0.0.1:1", encoder: "meshkit" });
    delete process.env.MESHKIT_OTLP_TRACE_ENCODER;
    const byDefault = new OtlpGrpcTraceExporter({ url: "http://127.0.0.1:1" });
    assert.deepEqual([fromEnv.encoder, fromOption.encoder, byDefault.encoder], ["opentelemetry", "meshkit", "meshkit"]);
    await Promise.all([fromEnv.shutdown(), fromOption.shutdown(), byDefault.shutdown()]);
  });
});
