import { SpanStatusCode, type Attributes, type Link, type Tracer } from "@opentelemetry/api";

/**
 * tracedTick runs one tick of a shared collector (the status feed's, the dashboard's) as a root
 * span of its own named `name`, linked to the spans of the watches it serves, rather than inside
 * the first watcher's trace. A failed tick is recorded on the span and yields undefined: the
 * collector keeps its last result and ticks again.
 */
export function tracedTick<T>(tracer: Tracer, name: string, links: Link[], attributes: Attributes, collect: () => Promise<T>): Promise<T | undefined> {
  return tracer.startActiveSpan(name, { root: true, links, attributes }, async (span) => {
    try {
      return await collect();
    } catch (error) {
      span.recordException(error instanceof Error ? error : String(error));
      span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) });
      return undefined;
    } finally {
      span.end();
    }
  });
}
