import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { SpanSchema, TraceSchema, TraceSummarySchema, type Span, type Trace, type TraceSummary } from "../../../../gen/meshkit/dashboard/v1/dashboard_pb.js";

/** A trace as Jaeger's query API (`/api/traces`) returns it (the fields read here). */
export interface JaegerTrace {
  traceID: string;
  spans: JaegerSpan[];
  processes: Record<string, { serviceName: string; tags?: JaegerTag[] }>;
}

interface JaegerSpan {
  spanID: string;
  operationName: string;
  references?: { refType: string; traceID: string; spanID: string }[] | null;
  /** Microseconds since the Unix epoch, and microseconds. */
  startTime: number;
  duration: number;
  tags?: JaegerTag[] | null;
  processID: string;
}

interface JaegerTag {
  key: string;
  type?: string;
  value: unknown;
}

/** Jaeger out of reach, or an answer that is not one. */
export class JaegerError extends Error {}

async function jaegerGet<T>(baseUrl: string, path: string, timeoutMs: number): Promise<T> {
  let response: Response;
  try {
    response = await fetch(`${baseUrl}${path}`, { signal: AbortSignal.timeout(timeoutMs) });
  } catch (error) {
    const cause = (error as { cause?: { code?: string } }).cause;
    throw new JaegerError(`Jaeger at ${baseUrl} is out of reach: ${cause?.code ?? (error instanceof Error ? error.message : String(error))}`);
  }
  if (response.status === 404) throw new JaegerError("not found");
  const body = (await response.json().catch(() => undefined)) as { data?: T; errors?: { msg?: string }[] | null } | undefined;
  if (!response.ok || !body) throw new JaegerError(`Jaeger at ${baseUrl} answered ${response.status}: ${body?.errors?.[0]?.msg ?? "no data"}`);
  return body.data as T;
}

/** The most recent traces with a span of `service` (in the last 15 minutes), newest first. */
export async function recentTraces(baseUrl: string, service: string, { limit = 20, timeoutMs = 2000 } = {}): Promise<TraceSummary[]> {
  const endUs = Date.now() * 1000;
  const query = new URLSearchParams({ service, limit: String(limit), start: String(endUs - 15 * 60 * 1_000_000), end: String(endUs) });
  const traces = (await jaegerGet<JaegerTrace[] | null>(baseUrl, `/api/traces?${query}`, timeoutMs)) ?? [];
  return traces
    .map(summarize)
    .sort((a, b) => Number((b.startedAt?.seconds ?? 0n) - (a.startedAt?.seconds ?? 0n)) || (b.startedAt?.nanos ?? 0) - (a.startedAt?.nanos ?? 0))
    .slice(0, limit);
}

/** One trace, ready to draw; a JaegerError "not found" when Jaeger does not have it. */
export async function readTrace(baseUrl: string, traceId: string, timeoutMs = 3000): Promise<Trace> {
  const traces = (await jaegerGet<JaegerTrace[] | null>(baseUrl, `/api/traces/${encodeURIComponent(traceId)}`, timeoutMs)) ?? [];
  const trace = traces[0];
  if (!trace) throw new JaegerError("not found");
  return waterfall(trace);
}

/** gRPC status codes by number, as gRPC names them. */
const grpcCodes = ["OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"];

/** "OK", "ERROR", "OK · grpc OK", "ERROR · grpc UNAVAILABLE": the span's outcome as a bar's label says it. */
export function spanStatus(error: boolean, grpcCode: unknown): string {
  const code = grpcCode === undefined ? "" : ` · grpc ${grpcCodes[Number(grpcCode)] ?? String(grpcCode)}`;
  return `${error ? "ERROR" : "OK"}${code}`;
}

const tagValue = (tags: readonly JaegerTag[] | null | undefined, key: string) => tags?.find((tag) => tag.key === key)?.value;

function isError(span: JaegerSpan): boolean {
  return tagValue(span.tags, "error") === true || tagValue(span.tags, "otel.status_code") === "ERROR";
}

function parentOf(span: JaegerSpan, ids: ReadonlySet<string>): string {
  const reference = span.references?.find((ref) => ref.refType === "CHILD_OF" && ids.has(ref.spanID));
  return reference?.spanID ?? "";
}

/** summarize: a trace's root (the earliest span without a parent in the trace), its length, services and errors. */
export function summarize(trace: JaegerTrace): TraceSummary {
  const ids = new Set(trace.spans.map((span) => span.spanID));
  const start = Math.min(...trace.spans.map((span) => span.startTime));
  const end = Math.max(...trace.spans.map((span) => span.startTime + span.duration));
  const roots = trace.spans.filter((span) => !parentOf(span, ids)).sort((a, b) => a.startTime - b.startTime);
  const root = roots[0] ?? trace.spans[0];
  const services = [...new Set(trace.spans.map((span) => trace.processes[span.processID]?.serviceName ?? "?"))].sort();
  return create(TraceSummarySchema, {
    traceId: trace.traceID,
    rootService: root ? (trace.processes[root.processID]?.serviceName ?? "?") : "",
    rootOperation: root?.operationName ?? "",
    startedAt: timestampFromMs(Math.floor(start / 1000)),
    durationMs: trace.spans.length > 0 ? (end - start) / 1000 : 0,
    spanCount: trace.spans.length,
    errorCount: trace.spans.filter(isError).length,
    services,
  });
}

/**
 * waterfall orders a trace's spans depth first (each parent before its children, siblings by
 * start time) with each span's depth and its offset from the trace's start, as a waterfall
 * draws them. A span whose parent is not in the trace is drawn as a root.
 */
export function waterfall(trace: JaegerTrace): Trace {
  const ids = new Set(trace.spans.map((span) => span.spanID));
  const start = trace.spans.length > 0 ? Math.min(...trace.spans.map((span) => span.startTime)) : 0;
  const end = trace.spans.length > 0 ? Math.max(...trace.spans.map((span) => span.startTime + span.duration)) : 0;
  const children = new Map<string, JaegerSpan[]>();
  for (const span of trace.spans) {
    const parent = parentOf(span, ids);
    let list = children.get(parent);
    if (!list) children.set(parent, (list = []));
    list.push(span);
  }
  for (const list of children.values()) list.sort((a, b) => a.startTime - b.startTime);
  const ordered: Span[] = [];
  const visited = new Set<string>();
  const visit = (parent: string, depth: number, only?: JaegerSpan) => {
    for (const span of only ? [only] : (children.get(parent) ?? [])) {
      if (visited.has(span.spanID)) continue;
      visited.add(span.spanID);
      const process = trace.processes[span.processID];
      ordered.push(
        create(SpanSchema, {
          spanId: span.spanID,
          parentSpanId: parent,
          service: process?.serviceName ?? "?",
          operation: span.operationName,
          startMs: (span.startTime - start) / 1000,
          durationMs: span.duration / 1000,
          depth,
          error: isError(span),
          status: spanStatus(isError(span), tagValue(span.tags, "rpc.grpc.status_code")),
          kind: String(tagValue(span.tags, "span.kind") ?? ""),
          attributes: [
            ...(span.tags ?? []).map((tag) => ({ key: tag.key, value: String(tag.value) })),
            ...(process?.tags ?? []).map((tag) => ({ key: `process: ${tag.key}`, value: String(tag.value) })),
          ],
        }),
      );
      visit(span.spanID, depth + 1);
    }
  };
  visit("", 0);
  // Spans in a parent cycle (a malformed trace) are reached from no root: drawn as roots.
  for (const span of trace.spans) if (!visited.has(span.spanID)) visit("", 0, span);
  return create(TraceSchema, { traceId: trace.traceID, spans: ordered, durationMs: (end - start) / 1000 });
}
