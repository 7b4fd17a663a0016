import { Counter, Gauge, type Histogram, register as defaultRegistry, type Registry } from "prom-client";
import { BoundHistogram } from "../../common/bound-histogram.js";

/** Latency buckets in seconds: 0.5 ms to 10 s, dense where healthy RPCs land. */
const latencyBuckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** The breaker state as a number, for the `meshkit_client_breaker_state` gauge. */
export const breakerStateValue = { closed: 0, half_open: 1, open: 2 } as const;

/**
 * The client's Prometheus metrics, registered once per registry whatever the number of
 * transports. Names follow Prometheus conventions (base units, `_total` counters).
 */
export interface ClientMetrics {
  calls: Histogram<"service" | "method" | "code">;
  attempts: Histogram<"service" | "method" | "instance" | "code">;
  retries: Counter<"service" | "method" | "reason">;
  budgetExhausted: Counter<"service">;
  breakerState: Gauge<"service" | "instance">;
  breakerTransitions: Counter<"service" | "instance" | "state">;
  resolverInstances: Gauge<"service">;
  resolverStaleness: Gauge<"service">;
  /** Per instance, at scrape time: 1 while the client leaves it out of its picks (ejected by its breaker). */
  endpointEjected: Gauge<"service" | "instance">;
  /** Per instance, at scrape time: attempts in flight to it. */
  endpointOutstanding: Gauge<"service" | "instance">;
  /** Per instance, at scrape time: the client's peak-EWMA latency estimate, in seconds. */
  endpointLatency: Gauge<"service" | "instance">;
  /**
   * The endpoint sets whose instances the three gauges above report, read at scrape time (keyed
   * by the set, so a transport that closes takes its instances' series with it). Two transports
   * of one service in one registry report one series per instance: ejected if either ejects it,
   * their outstanding attempts added, the higher estimate.
   */
  endpointSources: Map<object, { service: string; endpoints: () => Iterable<EndpointReport> }>;
  /**
   * Staleness sources read at scrape time, one per transport (keyed by the transport, so that
   * closing one of two transports of a service leaves the other's); a service reports its
   * freshest source.
   */
  stalenessSources: Map<object, { service: string; stalenessMs: () => number }>;
  /** `meshkit_client_calls_total{service,route,target}`, read at scrape time from `callSources`. */
  routedCalls: Counter<"service" | "route" | "target">;
  /**
   * The call counts of each transport's discovery-chain routing (routing/chain-routing.ts), one
   * source per transport: plain numbers a call increments, summed here at scrape time, so a call
   * pays no label lookup.
   */
  callSources: Map<object, () => Iterable<{ readonly labels: { service: string; route: string; target: string }; readonly count: number }>>;
  chainProblems: Counter<"service" | "kind">;
  chainUpdates: Counter<"service">;
}

/** What an endpoint set reports of one of its instances at scrape time. */
export interface EndpointReport {
  instance: string;
  ejected: boolean;
  outstanding: number;
  latencyMs: number;
}

const byRegistry = new WeakMap<Registry, ClientMetrics>();

export function clientMetrics(registry: Registry = defaultRegistry): ClientMetrics {
  let metrics = byRegistry.get(registry);
  if (metrics) return metrics;
  const registers = [registry];
  const stalenessSources: ClientMetrics["stalenessSources"] = new Map();
  const endpointSources: ClientMetrics["endpointSources"] = new Map();
  // Each of the three endpoint gauges merges the sets' reports at its scrape (a walk over the endpoints).
  const reports = () => {
    const byKey = new Map<string, EndpointReport & { service: string }>();
    for (const { service, endpoints } of endpointSources.values()) {
      for (const report of endpoints()) {
        const key = `${service}\n${report.instance}`;
        const seen = byKey.get(key);
        if (!seen) {
          byKey.set(key, { service, ...report });
        } else {
          seen.ejected ||= report.ejected;
          seen.outstanding += report.outstanding;
          seen.latencyMs = Math.max(seen.latencyMs, report.latencyMs);
        }
      }
    }
    return byKey;
  };
  // Series exist only for the instances some endpoint set holds now: a gauge is rebuilt on every scrape.
  const endpointGauge = (name: string, help: string, value: (report: EndpointReport) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ["service", "instance"],
      registers,
      collect() {
        this.reset();
        for (const report of reports().values()) this.set({ service: report.service, instance: report.instance }, value(report));
      },
    });
  const callSources: ClientMetrics["callSources"] = new Map();
  metrics = {
    // Observed on every call and every attempt: children that keep their own counts (bound-histogram.ts).
    calls: new BoundHistogram({
      name: "meshkit_client_call_duration_seconds",
      help: "Mesh client calls, from the caller's view (all attempts), by final gRPC code.",
      labelNames: ["service", "method", "code"],
      buckets: latencyBuckets,
      registers,
    }),
    attempts: new BoundHistogram({
      name: "meshkit_client_attempt_duration_seconds",
      help: "Attempts sent to one instance, by gRPC code.",
      labelNames: ["service", "method", "instance", "code"],
      buckets: latencyBuckets,
      registers,
    }),
    retries: new Counter({
      name: "meshkit_client_retries_total",
      help: "Attempts after the first, by the code that caused them.",
      labelNames: ["service", "method", "reason"],
      registers,
    }),
    budgetExhausted: new Counter({
      name: "meshkit_client_retry_budget_exhausted_total",
      help: "Retries refused because the retry budget was spent.",
      labelNames: ["service"],
      registers,
    }),
    breakerState: new Gauge({
      name: "meshkit_client_breaker_state",
      help: "Circuit breaker state per instance: 0 closed, 1 half-open, 2 open.",
      labelNames: ["service", "instance"],
      registers,
    }),
    breakerTransitions: new Counter({
      name: "meshkit_client_breaker_transitions_total",
      help: "Circuit breaker state changes per instance, by the state entered.",
      labelNames: ["service", "instance", "state"],
      registers,
    }),
    resolverInstances: new Gauge({
      name: "meshkit_resolver_instances",
      help: "Instances the resolver currently knows as passing.",
      labelNames: ["service"],
      registers,
    }),
    resolverStaleness: new Gauge({
      name: "meshkit_resolver_staleness_seconds",
      help: "Seconds since the registry last answered the resolver's watch.",
      labelNames: ["service"],
      registers,
      collect() {
        const freshest = new Map<string, number>();
        for (const { service, stalenessMs } of stalenessSources.values()) freshest.set(service, Math.min(freshest.get(service) ?? Infinity, stalenessMs()));
        this.reset(); // a service whose last transport closed has no series
        for (const [service, ms] of freshest) this.set({ service }, ms / 1000);
      },
    }),
    endpointEjected: endpointGauge("meshkit_client_endpoint_ejected", "1 while the client leaves the instance out of its picks (its breaker open, within the ejection cap), else 0.", (r) => (r.ejected ? 1 : 0)),
    endpointOutstanding: endpointGauge("meshkit_client_endpoint_outstanding", "Attempts in flight to the instance.", (r) => r.outstanding),
    endpointLatency: endpointGauge("meshkit_client_endpoint_latency_seconds", "The client's peak-EWMA latency estimate of the instance, in seconds.", (r) => r.latencyMs / 1000),
    endpointSources,
    stalenessSources,
    routedCalls: new Counter({
      name: "meshkit_client_calls_total",
      help: "Mesh client calls by the discovery chain's route they matched and the target that served them (its failover target when it failed over).",
      labelNames: ["service", "route", "target"],
      registers,
      collect() {
        this.reset(); // a closed transport's series go with it
        for (const source of callSources.values()) for (const cell of source()) if (cell.count > 0) this.inc(cell.labels, cell.count);
      },
    }),
    callSources,
    chainProblems: new Counter({
      name: "meshkit_client_chain_problems_total",
      help: "Parts of a discovery chain that could not be applied (unknown or unsupported fields, invalid regexes or filters), per chain applied, by kind.",
      labelNames: ["service", "kind"],
      registers,
    }),
    chainUpdates: new Counter({
      name: "meshkit_client_chain_updates_total",
      help: "Discovery chains applied (the first included).",
      labelNames: ["service"],
      registers,
    }),
  };
  byRegistry.set(registry, metrics);
  return metrics;
}
