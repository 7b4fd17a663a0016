import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { context, propagation, SpanKind, SpanStatusCode, trace, type Context, type Span } from "@opentelemetry/api";
import { observeCalls, type CallObserver } from "./observe-calls.js";

const tracer = trace.getTracer("meshkit-server");

/**
 * serverTracing continues the caller's trace (W3C trace context in the request headers) with a
 * SERVER span per call, named and attributed after the OpenTelemetry RPC semantic conventions.
 * A streaming response's span ends when the stream does, not when the handler returns.
 * Health checks and reflection calls are traced only when they come inside a caller's trace.
 */
export function serverTracing(): Interceptor {
  const traced = observeCalls((request) => {
    const parent = propagation.extract(context.active(), request.header, headerGetter);
    const span = tracer.startSpan(
      `${request.service.typeName}/${request.method.name}`,
      {
        kind: SpanKind.SERVER,
        attributes: {
          "rpc.system": "grpc",
          "rpc.service": request.service.typeName,
          "rpc.method": request.method.name,
        },
      },
      parent,
    );
    return new TracedCall(span, trace.setSpan(parent, span));
  });
  return (next) => {
    const withSpan = traced(next);
    // Consul's health checks (every few seconds per instance) and tools' reflection calls
    // would fill the trace store with one-span traces: trace them only inside a caller's trace.
    return (request) => (untracedUnlessParented.test(request.service.typeName) && !request.header.has("traceparent") ? next(request) : withSpan(request));
  };
}

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
