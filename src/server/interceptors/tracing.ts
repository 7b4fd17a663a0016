import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { DescMethod } from "@bufbuild/protobuf";
import { context, propagation, SpanKind, SpanStatusCode, trace, type Context, type Span, type SpanOptions } from "@opentelemetry/api";
import { observeCalls, type CallObserver } from "./observe-calls.js";

const tracer = trace.getTracer("meshkit-server");

/**
 * serverTracing continues the caller's trace (W3C trace context in the request headers) with a
 * SERVER span per call, named and attributed after the OpenTelemetry RPC semantic conventions.
 * A streaming response's span ends when the stream does, not when the handler returns.
 * Health checks and reflection calls are traced only when they come inside a caller's trace.
 */
export function serverTracing(): Interceptor {
  const plans = new Map<DescMethod, SpanPlan>();
  return observeCalls((request) => {
    let plan = plans.get(request.method);
    if (!plan) plans.set(request.method, (plan = planFor(request.service.typeName, request.method.name)));
    // Consul's health checks (every few seconds per instance) and tools' reflection calls
    // would fill the trace store with one-span traces: trace them only inside a caller's trace.
    if (plan.onlyWhenParented && !request.header.has("traceparent")) return untraced;
    const parent = propagation.extract(context.active(), request.header, headerGetter);
    const span = tracer.startSpan(plan.name, plan.options, parent);
    return new TracedCall(span, trace.setSpan(parent, span));
  });
}

/** What every span of one method shares, made once per method (the SDK copies the attributes into each span). */
interface SpanPlan {
  name: string;
  options: SpanOptions;
  onlyWhenParented: boolean;
}

function planFor(serviceName: string, methodName: string): SpanPlan {
  const attributes = { "rpc.system": "grpc", "rpc.service": serviceName, "rpc.method": methodName };
  return { name: `${serviceName}/${methodName}`, options: { kind: SpanKind.SERVER, attributes }, onlyWhenParented: untracedUnlessParented.test(serviceName) };
}

/** A health check or reflection call outside any trace: no span. */
const untraced: CallObserver = {};

/** One traced call: the rest of the chain runs in its span's context; its end ends the span. */
class TracedCall implements CallObserver {
  constructor(
    private readonly span: Span,
    private readonly active: Context,
  ) {}

  run<T>(next: () => T): T {
    return context.with(this.active, next);
  }

  end(error: unknown): void {
    finish(this.span, error);
  }
}

function finish(span: Span, error: unknown): void {
  if (error === undefined) {
    span.setAttribute("rpc.grpc.status_code", 0);
  } else {
    const code = ConnectError.from(error).code;
    span.setAttribute("rpc.grpc.status_code", code);
    // A caller's mistake is not the server's error (OTel RPC conventions for SERVER spans).
    if (serverFaultCodes.has(code)) span.setStatus({ code: SpanStatusCode.ERROR, message: ConnectError.from(error).rawMessage });
    span.recordException(error instanceof Error ? error : String(error));
  }
  span.end();
}

const untracedUnlessParented = /^grpc\.(health|reflection)\./;

const serverFaultCodes = new Set<Code>([
  Code.Unknown,
  Code.DeadlineExceeded,
  Code.Unimplemented,
  Code.Internal,
  Code.Unavailable,
  Code.DataLoss,
]);

const headerGetter = {
  keys: (carrier: Headers) => [...carrier.keys()],
  get: (carrier: Headers, key: string) => carrier.get(key) ?? undefined,
};
