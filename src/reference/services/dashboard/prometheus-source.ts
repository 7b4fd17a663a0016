import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  BreakerState,
  ClientViewSchema,
  EndpointViewSchema,
  HistoryPointSchema,
  RouteSchema,
  TrafficSchema,
  type ClientView,
  type HistoryPoint,
  type Route,
  type Traffic,
} from "../../../../gen/meshkit/dashboard/v1/dashboard_pb.js";

/**
 * The labels of a meshkit series once Prometheus scraped it with deploy/prometheus/prometheus.yml:
 * the scrape target's labels `service` and `instance` name the process that reported it (its
 * Consul service and instance id); a metric's own `service` and `instance` labels collide with
 * them and so arrive as `exported_service` and `exported_instance` (Prometheus renames them
 * unless `honor_labels` is set). For the server histogram, `exported_service` is the gRPC
 * service's full name; for the client metrics, the called Consul service and instance.
 */
const label = { process: "service", processInstance: "instance", exportedService: "exported_service", exportedInstance: "exported_instance" } as const;

/** Codes that mean the server failed the call (the mesh client's instance failures, and UNIMPLEMENTED). */
export const failureCodes = ["UNKNOWN", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS"] as const;

const serverHistogram = "meshkit_server_call_duration_seconds";
/**
 * The application's own methods: a service's totals leave out health checks (Consul's, every
 * few seconds per instance) and reflection, which its routes still list one by one.
 */
const applicationCalls = `${label.exportedService}!~"grpc[.](health|reflection)[.].*"`;
const isInfrastructure = (grpcService: string) => /^grpc\.(health|reflection)\./.test(grpcService);
const clientGauges = ["meshkit_client_breaker_state", "meshkit_client_endpoint_ejected", "meshkit_client_endpoint_outstanding", "meshkit_client_endpoint_latency_seconds"] as const;

export interface PromSample {
  metric: Record<string, string>;
  value?: [number, string];
  values?: [number, string][];
}

/** A Prometheus query API answer that is not a success, or a Prometheus out of reach. */
export class PrometheusError extends Error {}

/**
 * promQuery runs one PromQL expression through Prometheus's HTTP API (`/api/v1/query`, or
 * `/api/v1/query_range` with `range`), bounded by `timeoutMs`, and returns its series.
 */
export async function promQuery(baseUrl: string, query: string, { timeoutMs = 2000, range }: { timeoutMs?: number; range?: { start: number; end: number; stepSeconds: number } } = {}): Promise<PromSample[]> {
  const form = new URLSearchParams({ query });
  if (range) {
    form.set("start", String(range.start));
    form.set("end", String(range.end));
    form.set("step", String(range.stepSeconds));
  }
  let response: Response;
  try {
    response = await fetch(`${baseUrl}/api/v1/${range ? "query_range" : "query"}`, { method: "POST", body: form, signal: AbortSignal.timeout(timeoutMs) });
  } catch (error) {
    throw new PrometheusError(`Prometheus at ${baseUrl} is out of reach: ${describe(error)}`);
  }
  const body = (await response.json().catch(() => undefined)) as { status?: string; error?: string; data?: { result?: PromSample[] } } | undefined;
  if (!response.ok || body?.status !== "success") throw new PrometheusError(`Prometheus at ${baseUrl} answered ${response.status}: ${body?.error ?? "no result"}`);
  return body.data?.result ?? [];
}

function describe(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (error instanceof Error ? error.message : String(error));
}

const quote = (text: string) => `"${text.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;

/**
 * The RED queries of the overview: calls per second by code, and the latency percentiles (three
 * quantiles by method and by service, in one expression, told apart by a `q` label).
 */
export function trafficQueries(window: string): { calls: string; quantiles: string } {
  const bucketRate = (by: string) => `sum by (${by}, le) (rate(${serverHistogram}_bucket[${window}]))`;
  const parts: string[] = [];
  for (const q of ["0.5", "0.95", "0.99"]) {
    parts.push(`label_replace(histogram_quantile(${q}, ${bucketRate(`${label.process}, ${label.exportedService}, method`)}), "q", "${q}", "", "")`);
    parts.push(`label_replace(histogram_quantile(${q}, sum by (${label.process}, le) (rate(${serverHistogram}_bucket{${applicationCalls}}[${window}]))), "q", "${q}", "", "")`);
  }
  return {
    calls: `sum by (${label.process}, ${label.exportedService}, method, code) (rate(${serverHistogram}_count[${window}]))`,
    quantiles: parts.join(" or "),
  };
}

/** What the servers of one service recorded: its application's methods together (not health checks nor reflection), and per method. */
export interface ServiceTraffic {
  traffic: Traffic;
  routes: Route[];
}

interface Tally {
  calls: number;
  failures: number;
  p50: number;
  p95: number;
  p99: number;
}

const emptyTally = (): Tally => ({ calls: 0, failures: 0, p50: 0, p95: 0, p99: 0 });
const finite = (text: string | undefined) => {
  const value = Number(text);
  return Number.isFinite(value) ? value : 0;
};

function trafficOf(tally: Tally): Traffic {
  return create(TrafficSchema, {
    callsPerSecond: tally.calls,
    successRate: tally.calls > 0 ? Math.max(0, 1 - tally.failures / tally.calls) : 1,
    p50Ms: tally.p50 * 1000,
    p95Ms: tally.p95 * 1000,
    p99Ms: tally.p99 * 1000,
  });
}

function setQuantile(tally: Tally, q: string | undefined, seconds: number): void {
  if (q === "0.5") tally.p50 = seconds;
  else if (q === "0.95") tally.p95 = seconds;
  else if (q === "0.99") tally.p99 = seconds;
}

/** trafficFrom folds the two overview answers into each service's traffic, keyed by Consul service name. */
export function trafficFrom(calls: readonly PromSample[], quantiles: readonly PromSample[]): Map<string, ServiceTraffic> {
  const services = new Map<string, { total: Tally; routes: Map<string, { grpcService: string; method: string; tally: Tally }> }>();
  const serviceOf = (name: string) => {
    let entry = services.get(name);
    if (!entry) services.set(name, (entry = { total: emptyTally(), routes: new Map() }));
    return entry;
  };
  const routeOf = (metric: Record<string, string>) => {
    const entry = serviceOf(metric[label.process] ?? "");
    const grpcService = metric[label.exportedService] ?? "";
    const method = metric.method ?? "";
    const key = `${grpcService}/${method}`;
    let route = entry.routes.get(key);
    if (!route) entry.routes.set(key, (route = { grpcService, method, tally: emptyTally() }));
    return route;
  };
  for (const sample of calls) {
    const rate = finite(sample.value?.[1]);
    const failed = (failureCodes as readonly string[]).includes(sample.metric.code ?? "");
    const route = routeOf(sample.metric);
    route.tally.calls += rate;
    if (failed) route.tally.failures += rate;
    if (isInfrastructure(sample.metric[label.exportedService] ?? "")) continue;
    const total = serviceOf(sample.metric[label.process] ?? "").total;
    total.calls += rate;
    if (failed) total.failures += rate;
  }
  for (const sample of quantiles) {
    const seconds = finite(sample.value?.[1]);
    if (sample.metric.method === undefined) setQuantile(serviceOf(sample.metric[label.process] ?? "").total, sample.metric.q, seconds);
    else setQuantile(routeOf(sample.metric).tally, sample.metric.q, seconds);
  }
  const result = new Map<string, ServiceTraffic>();
  for (const [name, entry] of services) {
    const routes = [...entry.routes.values()]
      .sort((a, b) => a.grpcService.localeCompare(b.grpcService) || a.method.localeCompare(b.method))
      .map((route) => create(RouteSchema, { grpcService: route.grpcService, method: route.method, traffic: trafficOf(route.tally) }));
    result.set(name, { traffic: trafficOf(entry.total), routes });
  }
  return result;
}

/**
 * The clients' gauges with every sample of the last `window`, and the targets' `up`: a series
 * a client stopped exporting (its instance left the client's pool) still shows its last report,
 * which the scrape that followed no longer carries.
 */
export function clientQuery(window: string): string {
  return `{__name__=~"up|${clientGauges.join("|")}"}[${window}]`;
}

const breakerStates: Record<string, BreakerState> = { "0": BreakerState.CLOSED, "1": BreakerState.HALF_OPEN, "2": BreakerState.OPEN };

/**
 * clientViewsFrom turns the client query's answer into each called service's client views,
 * keyed by the called Consul service: per calling process (service and instance), per called
 * instance, its last report. A report older than the caller's last successful scrape is one the
 * caller stopped making: `in_pool` false.
 */
export function clientViewsFrom(samples: readonly PromSample[]): Map<string, ClientView[]> {
  const lastScrape = new Map<string, number>();
  const processKey = (metric: Record<string, string>) => `${metric[label.process] ?? ""}\n${metric[label.processInstance] ?? ""}`;
  for (const sample of samples) {
    if (sample.metric.__name__ !== "up") continue;
    const scraped = (sample.values ?? []).filter(([, value]) => value === "1").at(-1);
    if (scraped) lastScrape.set(processKey(sample.metric), scraped[0]);
  }
  // called service -> calling process -> called instance -> the endpoint's last report
  const views = new Map<string, Map<string, Map<string, { at: number; breaker?: string; ejected?: string; outstanding?: string; latency?: string }>>>();
  for (const sample of samples) {
    const name = sample.metric.__name__;
    if (name === "up" || !name) continue;
    const last = sample.values?.at(-1);
    const called = sample.metric[label.exportedService];
    const instance = sample.metric[label.exportedInstance];
    if (!last || called === undefined || instance === undefined) continue;
    let byProcess = views.get(called);
    if (!byProcess) views.set(called, (byProcess = new Map()));
    let byInstance = byProcess.get(processKey(sample.metric));
    if (!byInstance) byProcess.set(processKey(sample.metric), (byInstance = new Map()));
    let report = byInstance.get(instance);
    if (!report) byInstance.set(instance, (report = { at: last[0] }));
    report.at = Math.max(report.at, last[0]);
    if (name === "meshkit_client_breaker_state") report.breaker = last[1];
    else if (name === "meshkit_client_endpoint_ejected") report.ejected = last[1];
    else if (name === "meshkit_client_endpoint_outstanding") report.outstanding = last[1];
    else if (name === "meshkit_client_endpoint_latency_seconds") report.latency = last[1];
  }
  const result = new Map<string, ClientView[]>();
  for (const [called, byProcess] of views) {
    const list: ClientView[] = [];
    for (const [key, byInstance] of byProcess) {
      const [clientService = "", clientInstance = ""] = key.split("\n");
      const scraped = lastScrape.get(key);
      const endpoints = [...byInstance]
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([instance, report]) =>
          create(EndpointViewSchema, {
            instance,
            breaker: breakerStates[report.breaker ?? ""] ?? BreakerState.UNSPECIFIED,
            ejected: report.ejected === "1",
            outstanding: Math.max(0, Math.round(finite(report.outstanding))),
            latencyEstimateMs: finite(report.latency) * 1000,
            inPool: scraped === undefined || report.at >= scraped,
            reportedAt: timestampFromMs(Math.round(report.at * 1000)),
          }),
        );
      list.push(create(ClientViewSchema, { clientService, clientInstance, endpoints }));
    }
    list.sort((a, b) => a.clientService.localeCompare(b.clientService) || a.clientInstance.localeCompare(b.clientInstance));
    result.set(called, list);
  }
  return result;
}

/** One service's traffic over a range: calls, failures and the three percentiles, told apart by `stat`. */
export function historyQuery(service: string, window: string): string {
  const selector = `${label.process}=${quote(service)}, ${applicationCalls}`;
  const failures = `code=~"${failureCodes.join("|")}"`;
  const parts = [
    `label_replace(sum(rate(${serverHistogram}_count{${selector}}[${window}])), "stat", "calls", "", "")`,
    `label_replace(sum(rate(${serverHistogram}_count{${selector}, ${failures}}[${window}])), "stat", "failures", "", "")`,
    ...["0.5", "0.95", "0.99"].map((q) => `label_replace(histogram_quantile(${q}, sum by (le) (rate(${serverHistogram}_bucket{${selector}}[${window}]))), "stat", "${q}", "", "")`),
  ];
  return parts.join(" or ");
}

/** historyFrom folds the history query's series into points, oldest first. */
export function historyFrom(samples: readonly PromSample[]): HistoryPoint[] {
  const byTime = new Map<number, Tally>();
  for (const sample of samples) {
    for (const [time, text] of sample.values ?? []) {
      let tally = byTime.get(time);
      if (!tally) byTime.set(time, (tally = emptyTally()));
      const value = finite(text);
      const stat = sample.metric.stat;
      if (stat === "calls") tally.calls = value;
      else if (stat === "failures") tally.failures = value;
      else setQuantile(tally, stat, value);
    }
  }
  return [...byTime]
    .sort(([a], [b]) => a - b)
    .map(([time, tally]) => create(HistoryPointSchema, { time: BigInt(Math.round(time)), traffic: trafficOf(tally) }));
}
