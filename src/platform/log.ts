import { trace } from "@opentelemetry/api";
import { pino, type DestinationStream, type Logger, type LoggerOptions } from "pino";

export type { Logger };

/**
 * createLogger returns a JSON-lines logger (pino) whose every line carries the trace and span id
 * of the active OpenTelemetry span, so a log line leads to its trace in Jaeger.
 * The level comes from `LOG_LEVEL` (default "info"); lines go to `destination` (default stdout).
 */
export function createLogger(name: string, bindings: Record<string, unknown> = {}, destination?: DestinationStream): Logger {
  const options: LoggerOptions<never> = {
    name,
    level: process.env.LOG_LEVEL ?? "info",
    base: { pid: process.pid, ...bindings },
    mixin() {
      const spanContext = trace.getActiveSpan()?.spanContext();
      return spanContext ? { trace_id: spanContext.traceId, span_id: spanContext.spanId } : {};
    },
  };
  return destination ? pino(options, destination) : pino(options);
}
