import type { Attributes, AttributeValue, HrTime, Link, SpanContext } from "@opentelemetry/api";
import type { ReadableSpan, TimedEvent } from "@opentelemetry/sdk-trace";

/**
 * The version of @opentelemetry/otlp-transformer whose serializer `encodeTraceExportRequest` was
 * last checked against, byte for byte (test/unit/otlp-trace-encoder.test.ts). package.json pins
 * the library to exactly this version, and a unit test fails when the installed or pinned
 * version is another: whoever bumps it re-runs the byte comparisons, reads the library's
 * serializer for anything new (a field, a default, an order), and then updates this.
 */
export const otlpTransformerVersionChecked = "0.301.0";

/**
 * encodeTraceExportRequest writes spans as an OTLP `ExportTraceServiceRequest` in protobuf: the
 * same bytes as `ProtobufTraceSerializer.serializeRequest` of @opentelemetry/otlp-transformer
 * (`otlpTransformerVersionChecked`: field for field, in the same order, with the same defaults;
 * its unit test compares the two on spans with every feature), written in one pass.
 * `OtlpGrpcTraceExporter` uses it unless told to use the library's serializer
 * (`encoder: "opentelemetry"`, or `MESHKIT_OTLP_TRACE_ENCODER=opentelemetry` for `startTelemetry`).
 *
 * ```ts
 * const request: Uint8Array = encodeTraceExportRequest(spans);
 * ```
 *
 * Why our own: with every call traced, serialization was the largest part of a span's cost on
 * the server (docs/benchmarks.md, server calls). The library's serializer runs the whole request
 * twice, once through a size estimator and once through its writer (so the JIT sees two receiver
 * shapes in every shared function), allocates a Uint8Array for every id it converts from hex,
 * and copies every ASCII string a character at a time after a first pass that checks it is
 * ASCII. This one writes once into a Buffer that doubles when full: ids go from hex straight into
 * it through a 128-entry lookup table; a string of up to 42 UTF-16 units is copied in one pass
 * that falls back to Node's UTF-8 writer at the first non-ASCII character; longer strings go
 * through Node's UTF-8 writer.
 */
export function encodeTraceExportRequest(spans: readonly ReadableSpan[]): Uint8Array {
  const writer = new Writer(spans.length * 256 + 512);
  for (const [resource, scopes] of groupByResourceAndScope(spans)) {
    writer.tag(1, LENGTH_DELIMITED);
    const resourceSpans = writer.begin();
    writeResource(writer, resource.attributes);
    for (const scoped of scopes.values()) {
      writer.tag(2, LENGTH_DELIMITED);
      const scopeSpans = writer.begin();
      const scope = scoped[0]!.instrumentationScope;
      writeScope(writer, scope);
      for (const span of scoped) {
        writer.tag(2, LENGTH_DELIMITED);
        writeSpan(writer, span);
      }
      if (scope.schemaUrl) {
        writer.tag(3, LENGTH_DELIMITED);
        writer.string(scope.schemaUrl);
      }
      writer.end(scopeSpans);
    }
    if (resource.schemaUrl) {
      writer.tag(3, LENGTH_DELIMITED);
      writer.string(resource.schemaUrl);
    }
    writer.end(resourceSpans);
  }
  return writer.finish();
}

type SpanResource = ReadableSpan["resource"];
type SpanScope = ReadableSpan["instrumentationScope"];

/** Spans by resource, then by instrumentation scope, both by identity (as the SDK shares them). */
function groupByResourceAndScope(spans: readonly ReadableSpan[]): Map<SpanResource, Map<SpanScope, ReadableSpan[]>> {
  const byResource = new Map<SpanResource, Map<SpanScope, ReadableSpan[]>>();
  for (const span of spans) {
    let byScope = byResource.get(span.resource);
    if (!byScope) byResource.set(span.resource, (byScope = new Map()));
    let scoped = byScope.get(span.instrumentationScope);
    if (!scoped) byScope.set(span.instrumentationScope, (scoped = []));
    scoped.push(span);
  }
  return byResource;
}

const VARINT = 0;
const FIXED64 = 1;
const LENGTH_DELIMITED = 2;
const FIXED32 = 5;
/** Span flags: the W3C trace flags, and that the parent's remoteness is known (and whether it is remote). */
const HAS_IS_REMOTE = 0x100;
const IS_REMOTE = 0x200;

/** Resource { attributes = 1; dropped_attributes_count = 2 } (the library always writes the count, 0). */
function writeResource(writer: Writer, attributes: Attributes | undefined): void {
  writer.tag(1, LENGTH_DELIMITED);
  const start = writer.begin();
  if (attributes) writeAttributes(writer, attributes, 1);
  writer.tag(2, VARINT);
  writer.varint(0);
  writer.end(start);
}

/** InstrumentationScope { name = 1; version = 2; attributes = 3; dropped_attributes_count = 4 }. */
function writeScope(writer: Writer, scope: SpanScope & { attributes?: Attributes; droppedAttributesCount?: number }): void {
  writer.tag(1, LENGTH_DELIMITED);
  const start = writer.begin();
  writer.tag(1, LENGTH_DELIMITED);
  writer.string(scope.name);
  if (scope.version) {
    writer.tag(2, LENGTH_DELIMITED);
    writer.string(scope.version);
  }
  if (scope.attributes) writeAttributes(writer, scope.attributes, 3);
  if (scope.droppedAttributesCount) {
    writer.tag(4, VARINT);
    writer.varint(scope.droppedAttributesCount);
  }
  writer.end(start);
}

/**
 * Span { trace_id = 1; span_id = 2; trace_state = 3; parent_span_id = 4; name = 5; kind = 6;
 * start_time_unix_nano = 7; end_time_unix_nano = 8; attributes = 9; dropped_attributes_count = 10;
 * events = 11; dropped_events_count = 12; links = 13; dropped_links_count = 14; status = 15; flags = 16 }.
 */
function writeSpan(writer: Writer, span: ReadableSpan): void {
  const start = writer.begin();
  const context = span.spanContext();
  writeIds(writer, context);
  const parent = span.parentSpanContext;
  if (parent?.spanId) {
    writer.tag(4, LENGTH_DELIMITED);
    writer.hexBytes(parent.spanId);
  }
  writer.tag(5, LENGTH_DELIMITED);
  writer.string(span.name);
  // OTLP's SpanKind counts from SPAN_KIND_UNSPECIFIED = 0; the API's from INTERNAL = 0.
  const kind = span.kind == null ? 0 : span.kind + 1;
  if (kind !== 0) {
    writer.tag(6, VARINT);
    writer.varint(kind);
  }
  writer.tag(7, FIXED64);
  writer.hrTime(span.startTime);
  writer.tag(8, FIXED64);
  writer.hrTime(span.endTime);
  writeAttributesAndDropped(writer, span.attributes, 9, span.droppedAttributesCount);
  for (const event of span.events) {
    writer.tag(11, LENGTH_DELIMITED);
    writeEvent(writer, event);
  }
  writer.tag(12, VARINT);
  writer.varint(span.droppedEventsCount);
  for (const link of span.links) {
    writer.tag(13, LENGTH_DELIMITED);
    writeLink(writer, link);
  }
  writer.tag(14, VARINT);
  writer.varint(span.droppedLinksCount);
  writer.tag(15, LENGTH_DELIMITED);
  const status = writer.begin();
  if (span.status.message) {
    writer.tag(2, LENGTH_DELIMITED);
    writer.string(span.status.message);
  }
  writer.tag(3, VARINT);
  writer.varint(span.status.code);
  writer.end(status);
  writer.tag(16, FIXED32);
  writer.fixed32(spanFlags(context.traceFlags, parent?.isRemote));
  writer.end(start);
}

/** trace_id = 1; span_id = 2; trace_state = 3: the same three fields open a Span and a Span.Link. */
function writeIds(writer: Writer, context: SpanContext): void {
  writer.tag(1, LENGTH_DELIMITED);
  writer.hexBytes(context.traceId);
  writer.tag(2, LENGTH_DELIMITED);
  writer.hexBytes(context.spanId);
  const traceState = context.traceState?.serialize();
  if (traceState) {
    writer.tag(3, LENGTH_DELIMITED);
    writer.string(traceState);
  }
}

function spanFlags(traceFlags: number, isRemote: boolean | undefined): number {
  return (traceFlags & 0xff) | HAS_IS_REMOTE | (isRemote ? IS_REMOTE : 0);
}

/** Span.Event { time_unix_nano = 1; name = 2; attributes = 3; dropped_attributes_count = 4 }. */
function writeEvent(writer: Writer, event: TimedEvent): void {
  const start = writer.begin();
  writer.tag(1, FIXED64);
  writer.hrTime(event.time);
  writer.tag(2, LENGTH_DELIMITED);
  writer.string(event.name);
  writeAttributesAndDropped(writer, event.attributes, 3, event.droppedAttributesCount);
  writer.end(start);
}

/** Span.Link { trace_id = 1; span_id = 2; trace_state = 3; attributes = 4; dropped_attributes_count = 5; flags = 6 }. */
function writeLink(writer: Writer, link: Link & { droppedAttributesCount?: number }): void {
  const start = writer.begin();
  const context = link.context;
  writeIds(writer, context);
  writeAttributesAndDropped(writer, link.attributes, 4, link.droppedAttributesCount);
  writer.tag(6, FIXED32);
  writer.fixed32(spanFlags(context.traceFlags, context.isRemote));
  writer.end(start);
}

/** Attributes as field `field`, then how many were dropped as `field + 1`: how a Span, an Event and a Link each carry theirs (the count always written). */
function writeAttributesAndDropped(writer: Writer, attributes: Attributes | undefined, field: number, dropped: number | undefined): void {
  if (attributes) writeAttributes(writer, attributes, field);
  writer.tag(field + 1, VARINT);
  writer.varint(dropped || 0);
}

/** Repeated KeyValue { key = 1; value = 2 } as field `field`, in the attributes' own key order. */
function writeAttributes(writer: Writer, attributes: Attributes, field: number): void {
  for (const key in attributes) {
    if (!Object.prototype.hasOwnProperty.call(attributes, key)) continue;
    writer.tag(field, LENGTH_DELIMITED);
    const start = writer.begin();
    writeKeyValue(writer, key, attributes[key]);
    writer.end(start);
  }
}

function writeKeyValue(writer: Writer, key: string, value: unknown): void {
  writer.tag(1, LENGTH_DELIMITED);
  writer.string(key);
  writer.tag(2, LENGTH_DELIMITED);
  const start = writer.begin();
  writeAnyValue(writer, value);
  writer.end(start);
}

const MIN_INT64 = -(2 ** 63);
const MAX_INT64 = 2 ** 63;

/**
 * AnyValue { string_value = 1; bool_value = 2; int_value = 3; double_value = 4; array_value = 5;
 * kvlist_value = 6; bytes_value = 7 }: integers within int64 as int_value, other numbers as
 * double_value; anything else (null, undefined) as an empty AnyValue.
 */
function writeAnyValue(writer: Writer, value: AttributeValue | unknown): void {
  switch (typeof value) {
    case "string":
      writer.tag(1, LENGTH_DELIMITED);
      writer.string(value);
      return;
    case "boolean":
      writer.tag(2, VARINT);
      writer.varint(value ? 1 : 0);
      return;
    case "number":
      if (Number.isInteger(value) && value >= MIN_INT64 && value < MAX_INT64) {
        writer.tag(3, VARINT);
        writer.varint(value);
      } else {
        writer.tag(4, FIXED64);
        writer.double(value);
      }
      return;
  }
  if (value instanceof Uint8Array) {
    writer.tag(7, LENGTH_DELIMITED);
    writer.bytes(value);
  } else if (Array.isArray(value)) {
    writer.tag(5, LENGTH_DELIMITED);
    const array = writer.begin();
    for (const item of value) {
      writer.tag(1, LENGTH_DELIMITED);
      const start = writer.begin();
      writeAnyValue(writer, item);
      writer.end(start);
    }
    writer.end(array);
  } else if (typeof value === "object" && value !== null) {
    writer.tag(6, LENGTH_DELIMITED);
    const list = writer.begin();
    const entries = value as Record<string, unknown>;
    for (const key in entries) {
      if (!Object.prototype.hasOwnProperty.call(entries, key)) continue;
      writer.tag(1, LENGTH_DELIMITED);
      const start = writer.begin();
      writeKeyValue(writer, key, entries[key]);
      writer.end(start);
    }
    writer.end(list);
  }
}

/**
 * Writer is a protobuf writer over a Buffer that doubles when full. A length-delimited field
 * reserves one byte for its length (most are under 128 bytes) and moves its content up when the
 * length needs more, as the library's writer does, so the bytes are the canonical encoding.
 */
class Writer {
  #buffer: Buffer;
  #pos = 0;

  constructor(capacity: number) {
    this.#buffer = Buffer.allocUnsafe(capacity);
  }

  finish(): Uint8Array {
    return this.#buffer.subarray(0, this.#pos);
  }

  #ensure(bytes: number): void {
    if (this.#pos + bytes <= this.#buffer.length) return;
    let capacity = this.#buffer.length * 2;
    while (capacity < this.#pos + bytes) capacity *= 2;
    const grown = Buffer.allocUnsafe(capacity);
    this.#buffer.copy(grown, 0, 0, this.#pos);
    this.#buffer = grown;
  }

  tag(field: number, wireType: number): void {
    this.varint((field << 3) | wireType);
  }

  /** A varint of an integer in int64's range (negative ones as 64-bit two's complement, 10 bytes). */
  varint(value: number): void {
    this.#ensure(10);
    const buffer = this.#buffer;
    if (value >= 0 && value <= 0xffffffff) {
      let v = value >>> 0;
      while (v > 127) {
        buffer[this.#pos++] = (v & 127) | 128;
        v >>>= 7;
      }
      buffer[this.#pos++] = v;
      return;
    }
    let low: number;
    let high: number;
    if (value >= 0) {
      low = value >>> 0;
      high = (value / 4294967296) >>> 0;
    } else {
      const magnitude = Math.abs(value);
      low = ~(magnitude >>> 0) >>> 0;
      high = ~((magnitude / 4294967296) >>> 0) >>> 0;
      low = (low + 1) >>> 0;
      if (low === 0) high = (high + 1) >>> 0;
    }
    while (high > 0 || low > 127) {
      buffer[this.#pos++] = (low & 127) | 128;
      low = ((low >>> 7) | (high << 25)) >>> 0;
      high >>>= 7;
    }
    buffer[this.#pos++] = low & 127;
  }

  fixed32(value: number): void {
    this.#ensure(4);
    this.#pos = this.#buffer.writeUInt32LE(value >>> 0, this.#pos);
  }

  double(value: number): void {
    this.#ensure(8);
    this.#pos = this.#buffer.writeDoubleLE(value, this.#pos);
  }

  /** An HrTime [seconds, nanoseconds] as fixed64 nanoseconds since the epoch, exactly (past 2^53). */
  hrTime([seconds, nanos]: HrTime): void {
    const fromLow16 = (seconds & 0xffff) * 1e9;
    const fromHigh = ((seconds / 65536) >>> 0) * 1e9;
    const lowWithCarry = (fromLow16 >>> 0) + (((fromHigh & 0xffff) * 65536) >>> 0) + nanos;
    const low = lowWithCarry >>> 0;
    const high = (Math.floor(fromLow16 / 4294967296) + ((fromHigh / 65536) >>> 0) + Math.floor(lowWithCarry / 4294967296)) >>> 0;
    this.#ensure(8);
    this.#pos = this.#buffer.writeUInt32LE(low, this.#pos);
    this.#pos = this.#buffer.writeUInt32LE(high, this.#pos);
  }

  string(value: string): void {
    const length = value.length;
    // Up to 42 UTF-16 units fit in 127 UTF-8 bytes: one length byte, written after the text.
    // ASCII (nearly every name and attribute) is copied here: for strings this short, a call
    // into Node's UTF-8 writer costs more than the copy.
    if (length <= 42) {
      this.#ensure(1 + length * 3);
      const buffer = this.#buffer;
      const start = this.#pos + 1;
      let i = 0;
      for (; i < length; i++) {
        const code = value.charCodeAt(i);
        if (code > 127) break;
        buffer[start + i] = code;
      }
      const written = i === length ? length : buffer.write(value, start, "utf8");
      buffer[this.#pos] = written;
      this.#pos = start + written;
      return;
    }
    const bytes = Buffer.byteLength(value, "utf8");
    this.varint(bytes);
    this.#ensure(bytes);
    this.#pos += this.#buffer.write(value, this.#pos, bytes, "utf8");
  }

  bytes(value: Uint8Array): void {
    this.varint(value.length);
    this.#ensure(value.length);
    this.#buffer.set(value, this.#pos);
    this.#pos += value.length;
  }

  /** Bytes given in hex (trace and span ids), converted as the library's hexToBinary converts them (also what is not hex). */
  hexBytes(hex: string): void {
    const length = hex.length >>> 1;
    this.varint(length);
    this.#ensure(length);
    const buffer = this.#buffer;
    for (let i = 0, at = this.#pos; i < length; i++) {
      const high = hex.charCodeAt(2 * i);
      const low = hex.charCodeAt(2 * i + 1);
      buffer[at + i] = ((high < 128 ? hexDigits[high]! : hexDigit(high)) << 4) | (low < 128 ? hexDigits[low]! : hexDigit(low));
    }
    this.#pos += length;
  }

  /** Starts a length-delimited field's content: returns where its length goes. */
  begin(): number {
    this.#ensure(1);
    return this.#pos++;
  }

  /** Ends the content begun at `start`: writes its length there, moving the content up when the length takes more than one byte. */
  end(start: number): void {
    const length = this.#pos - start - 1;
    if (length < 128) {
      this.#buffer[start] = length;
      return;
    }
    const extra = varintSize(length) - 1;
    this.#ensure(extra);
    this.#buffer.copyWithin(start + 1 + extra, start + 1, this.#pos);
    this.#pos += extra;
    let v = length;
    let at = start;
    while (v > 127) {
      this.#buffer[at++] = (v & 127) | 128;
      v >>>= 7;
    }
    this.#buffer[at] = v;
  }
}

function varintSize(value: number): number {
  let size = 1;
  while (value > 127) {
    value >>>= 7;
    size++;
  }
  return size;
}

/** hexDigit of every ASCII code, looked up rather than worked out: ids are 48 hex digits per span. */
const hexDigits = Int16Array.from({ length: 128 }, (_, code) => hexDigit(code));

/** As @opentelemetry/otlp-transformer's hexToBinary reads a character. */
function hexDigit(code: number): number {
  if (code >= 48 && code <= 57) return code - 48;
  if (code >= 97 && code <= 102) return code - 87;
  return code - 55;
}
