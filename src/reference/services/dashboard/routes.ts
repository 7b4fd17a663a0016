import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { DashboardService, type MeshSnapshot, type Trace } from "../../../../gen/meshkit/dashboard/v1/dashboard_pb.js";
import { JaegerError } from "./jaeger-source.js";
import { createMeshFeed } from "./mesh-feed.js";

export interface DashboardRoutesDeps {
  /** The collector of the shared feed (collect.ts). */
  collect: (keys: ReadonlySet<string>) => Promise<ReadonlyMap<string, MeshSnapshot>>;
  /** How often the feed collects while someone watches, ms. */
  intervalMs: number;
  /** Reads one trace (jaeger-source.ts's readTrace). */
  readTrace: (traceId: string) => Promise<Trace>;
}

/** How long a trace read from Jaeger is reused for other pages asking for it, ms. */
const traceCacheMs = 10_000;
const traceCacheSize = 50;

export function dashboardRoutes({ collect, intervalMs, readTrace }: DashboardRoutesDeps): (router: ConnectRouter) => void {
  // One collector for every WatchMesh stream of this instance (mesh-feed.ts).
  const feed = createMeshFeed(collect, intervalMs);
  // A trace a hundred pages open at once is one Jaeger query: in flight and recent reads are shared.
  const traces = new Map<string, { at: number; trace: Promise<Trace> }>();
  const cachedTrace = (traceId: string) => {
    const now = Date.now();
    const hit = traces.get(traceId);
    if (hit && now - hit.at < traceCacheMs) return hit.trace;
    for (const [id, entry] of traces) if (now - entry.at >= traceCacheMs || traces.size >= traceCacheSize) traces.delete(id);
    const trace = readTrace(traceId);
    traces.set(traceId, { at: now, trace });
    trace.catch(() => traces.delete(traceId));
    return trace;
  };

  return (router) =>
    router.service(DashboardService, {
      async *watchMesh(request, context) {
        if (request.service.length > 256) throw new ConnectError("service: at most 256 characters", Code.InvalidArgument);
        for await (const snapshot of feed.watch(request.service, context.signal)) yield { snapshot };
      },
      async getTrace(request) {
        if (!/^[0-9a-f]{16,32}$/.test(request.traceId)) throw new ConnectError("trace_id: 16 to 32 lower-case hex digits", Code.InvalidArgument);
        try {
          return { trace: await cachedTrace(request.traceId) };
        } catch (error) {
          if (error instanceof JaegerError && error.message === "not found") throw new ConnectError(`trace ${request.traceId} is not in Jaeger`, Code.NotFound);
          if (error instanceof JaegerError) throw new ConnectError(error.message, Code.Unavailable);
          throw error;
        }
      },
    });
}
