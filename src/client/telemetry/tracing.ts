import { context, isSpanContextValid, propagation, SpanKind, SpanStatusCode, trace, type Context, type Span, type SpanOptions } from "@opentelemetry/api";
import type { DescMethod } from "@bufbuild/protobuf";

type HeaderInit = ConstructorParameters<typeof Headers>[0];

const tracer = trace.getTracer("meshkit-client");

/**
 * The name and start options of one method's call spans for one service, built once: they are
 * the same for every call, and a tracer only reads them (the SDK copies the attributes).
 */
interface CallSpanShape {
  readonly name: string;
  readonly options: SpanOptions;
}
const shapes = new WeakMap<DescMethod, Map<string, CallSpanShape>>();

function shapeOf(service: string, method: DescMethod): CallSpanShape {
  let byService = shapes.get(method);
  if (!byService) shapes.set(method, (byService = new Map()));
  let shape = byService.get(service);
  if (!shape) {
    const attributes = Object.freeze({ "rpc.system": "grpc", "rpc.service": method.parent.typeName, "rpc.method": method.name, "meshkit.service": service });
    shape = { name: `${method.parent.typeName}/${method.name}`, options: Object.freeze({ kind: SpanKind.CLIENT, attributes }) };
    byService.set(service, shape);
  }
  return shape;
}

/**
 * startCallSpan opens the CLIENT span of one mesh call, named and attributed after the
 * OpenTelemetry RPC semantic conventions. Each attempt is recorded on it as an event. `context`
 * is what attempts propagate (see `attemptHeaders`).
 */
export function startCallSpan(service: string, method: DescMethod): { span: Span; context: Context } {
  const parent = context.active();
  const shape = shapeOf(service, method);
  const span = tracer.startSpan(shape.name, shape.options, parent);
  // A span that records nothing and carries its parent's span context (or none valid) is what
  // the no-op tracer returns when no SDK is installed: a propagator would write the same trace
  // context from the parent's context, so the per-call copy trace.setSpan makes is skipped.
  // (A span an SDK sampled out has a span id of its own, and gets its context as before.)
  const spanContext = span.spanContext();
  const addsNothing = !span.isRecording() && (spanContext === trace.getSpanContext(parent) || !isSpanContextValid(spanContext));
  return { span, context: addsNothing ? parent : trace.setSpan(parent, span) };
}

/** Writes W3C trace context (traceparent, tracestate) of `callContext` into `headers`. */
export function injectTraceContext(callContext: Context, headers: Headers): void {
  propagation.inject(callContext, headers, headerSetter);
}

/**
 * attemptHeaders are the request headers of one attempt: a copy of the caller's `header` (an
 * attempt interceptor may change its own copy) and the trace context of `callContext`.
 * Undefined when both are empty (no caller headers; no propagator installed, or nothing to
 * propagate), so that the transport builds no `Headers` for the attempt at all: undici's
 * `Headers` costs a construction and a validated copy per call, for nothing to send.
 */
export function attemptHeaders(header: HeaderInit | undefined, callContext: Context): Headers | undefined {
  const fields: Record<string, string> = {};
  propagation.inject(callContext, fields); // the default setter: fields[key] = value
  let headers = header === undefined ? undefined : new Headers(header);
  for (const key in fields) (headers ??= new Headers()).set(key, fields[key]!);
  return headers;
}

export function endCallSpan(span: Span, code: number, error: Error | undefined, attempts: number): void {
  if (!span.isRecording()) {
    span.end();
    return;
  }
  span.setAttribute("rpc.grpc.status_code", code);
  span.setAttribute("meshkit.attempts", attempts);
  if (error) {
    span.setStatus({ code: SpanStatusCode.ERROR, message: error.message });
    span.recordException(error);
  }
  span.end();
}

const headerSetter = {
  set: (carrier: Headers, key: string, value: string) => carrier.set(key, value),
};
