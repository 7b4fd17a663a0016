import { create } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import {
  InstanceHealth,
  MeshSnapshotSchema,
  ServiceDetailSchema,
  ServiceSchema,
  Source,
  SourceProblemSchema,
  TrafficSchema,
  type ClientView,
  type MeshSnapshot,
  type Service,
  type ServiceDetail,
  type SourceProblem,
} from "../../../../gen/meshkit/dashboard/v1/dashboard_pb.js";
import type { ConsulClient } from "../../../platform/consul.js";
import { readChain, readIntentions } from "./consul-policy.js";
import { readServices, type InstanceHealthName, type ServiceRecord } from "./consul-source.js";
import { recentTraces } from "./jaeger-source.js";
import { clientQuery, clientViewsFrom, historyFrom, historyQuery, promQuery, trafficFrom, trafficQueries, type ServiceTraffic } from "./prometheus-source.js";

/** Where the dashboard reads the mesh from. */
export interface DashboardSources {
  consul: ConsulClient;
  /** For problem messages: where Consul was looked for. */
  consulAddress: string;
  /** Prometheus's base URL, e.g. http://127.0.0.1:9090. */
  prometheusUrl: string;
  /** Jaeger's query base URL, e.g. http://127.0.0.1:16686. */
  jaegerUrl: string;
  /** The window of rates and percentiles, seconds. Default 60. */
  windowSeconds?: number;
  /** How far back the history goes, seconds. Default 600. */
  historySeconds?: number;
  /** Longest one query to a source may take, ms. Default 2000. */
  timeoutMs?: number;
}

const healthValue: Record<InstanceHealthName, InstanceHealth> = {
  passing: InstanceHealth.PASSING,
  warning: InstanceHealth.WARNING,
  critical: InstanceHealth.CRITICAL,
  draining: InstanceHealth.DRAINING,
};

/**
 * createCollector makes the collect function of the dashboard's feed: per tick, one overview
 * (Consul's services and instances, the servers' traffic and the clients' views from
 * Prometheus) and one detail per watched service (its recent traces from Jaeger, intentions and
 * routing chain from Consul, traffic history from Prometheus), every query in parallel and
 * bounded. A source out of reach becomes a problem in the snapshot and the rest is still shown;
 * while Consul is out of reach the services are its last answer.
 */
export function createCollector(sources: DashboardSources): (keys: ReadonlySet<string>) => Promise<Map<string, MeshSnapshot>> {
  const windowSeconds = sources.windowSeconds ?? 60;
  const historySeconds = sources.historySeconds ?? 600;
  const timeoutMs = sources.timeoutMs ?? 2000;
  const window = `${windowSeconds}s`;
  let lastServices: ServiceRecord[] = [];

  const problem = (source: Source, address: string, error: unknown) =>
    create(SourceProblemSchema, { source, address, message: error instanceof Error ? error.message : String(error) });

  const overview = async () => {
    const problems: SourceProblem[] = [];
    const queries = trafficQueries(window);
    const [consulServices, traffic, clients] = await Promise.all([
      readServices(sources.consul, timeoutMs).then(
        (services) => (lastServices = services),
        (error: unknown) => {
          problems.push(problem(Source.CONSUL, sources.consulAddress, `Consul is out of reach (${error instanceof Error ? error.message : String(error)}): services as last seen`));
          return lastServices;
        },
      ),
      Promise.all([promQuery(sources.prometheusUrl, queries.calls, { timeoutMs }), promQuery(sources.prometheusUrl, queries.quantiles, { timeoutMs })]).then(
        ([calls, quantiles]) => trafficFrom(calls, quantiles),
        (error: unknown) => {
          problems.push(problem(Source.PROMETHEUS, sources.prometheusUrl, error));
          return new Map<string, ServiceTraffic>();
        },
      ),
      promQuery(sources.prometheusUrl, clientQuery("15s"), { timeoutMs }).then(clientViewsFrom, () => new Map<string, ClientView[]>()),
    ]);
    const names = new Set([...consulServices.map((service) => service.name), ...traffic.keys(), ...clients.keys()]);
    names.delete("");
    names.delete("consul");
    const byName = new Map(consulServices.map((service) => [service.name, service]));
    const services: Service[] = [...names].sort().map((name) =>
      create(ServiceSchema, {
        name,
        instances: (byName.get(name)?.instances ?? []).map((instance) => ({ ...instance, health: healthValue[instance.health] })),
        traffic: traffic.get(name)?.traffic ?? create(TrafficSchema, { successRate: 1 }),
        routes: traffic.get(name)?.routes ?? [],
        clients: clients.get(name) ?? [],
      }),
    );
    return { services, problems };
  };

  const detail = async (service: string) => {
    const problems: SourceProblem[] = [];
    const now = Date.now() / 1000;
    const [traces, intentions, chain, history] = await Promise.all([
      recentTraces(sources.jaegerUrl, service, { timeoutMs }).catch((error: unknown) => {
        problems.push(problem(Source.JAEGER, sources.jaegerUrl, error));
        return [];
      }),
      readIntentions(sources.consul, service, timeoutMs).catch((error: unknown) => {
        problems.push(problem(Source.CONSUL, sources.consulAddress, `intentions: ${error instanceof Error ? error.message : String(error)}`));
        return [];
      }),
      readChain(sources.consul, service, timeoutMs).catch((error: unknown) => {
        problems.push(problem(Source.CONSUL, sources.consulAddress, `routing chain: ${error instanceof Error ? error.message : String(error)}`));
        return undefined;
      }),
      promQuery(sources.prometheusUrl, historyQuery(service, window), { timeoutMs, range: { start: Math.floor(now - historySeconds), end: Math.floor(now), stepSeconds: 10 } }).then(historyFrom, (error: unknown) => {
        problems.push(problem(Source.PROMETHEUS, sources.prometheusUrl, error));
        return [];
      }),
    ]);
    return { detail: create(ServiceDetailSchema, { service, traces, intentions, ...(chain ? { chain } : {}), history }), problems };
  };

  return async (keys) => {
    const wanted = [...keys].filter((key) => key !== "");
    const [shared, ...details] = await Promise.all([overview(), ...wanted.map(detail)]);
    const observedAt = timestampNow();
    const snapshots = new Map<string, MeshSnapshot>();
    const snapshot = (problems: SourceProblem[], detail?: ServiceDetail) =>
      create(MeshSnapshotSchema, { observedAt, services: shared.services, problems: dedupe(problems), windowSeconds, ...(detail ? { detail } : {}) });
    if (keys.has("")) snapshots.set("", snapshot(shared.problems));
    wanted.forEach((key, index) => snapshots.set(key, snapshot([...shared.problems, ...details[index]!.problems], details[index]!.detail)));
    return snapshots;
  };
}

/** One problem per source: the first said (Consul's services before its intentions). */
function dedupe(problems: readonly SourceProblem[]): SourceProblem[] {
  const seen = new Set<Source>();
  return problems.filter((problem) => !seen.has(problem.source) && seen.add(problem.source));
}
