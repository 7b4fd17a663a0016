import { context, propagation, SpanKind, SpanStatusCode, trace, type Context, type Span } from "@opentelemetry/api";
import type { DescMethod } from "@bufbuild/protobuf";

const tracer = trace.getTracer("meshkit-client");

/**
 * startCallSpan opens the CLIENT span of one mesh call, named and attributed after the
 * OpenTelemetry RPC semantic conventions. Each attempt is recorded on it as an event.
 */
export function startCallSpan(service: string, method: DescMethod): { span: Span; context: Context } {
  const parent = context.active();
  const span = tracer.startSpan(
    `${method.parent.typeName}/${method.name}`,
    {
      kind: SpanKind.CLIENT,
      attributes: {
        "rpc.system": "grpc",
        "rpc.service": method.parent.typeName,
        "rpc.method": method.name,
        "meshkit.service": service,
      },
    },
    parent,
  );
  return { span, context: trace.setSpan(parent, span) };
}

/** Writes W3C trace context (traceparent, tracestate) of `callContext` into `headers`. */
export function injectTraceContext(callContext: Context, headers: Headers): void {
  propagation.inject(callContext, headers, headerSetter);
}

export function endCallSpan(span: Span, code: number, error: Error | undefined, attempts: number): void {
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
