/**
 * The compiled discovery chain as Consul 1.14's `GET /v1/discovery-chain/<service>` answers it
 * (`{ "Chain": structs.CompiledDiscoveryChain }`, agent/structs/discovery_chain.go). Consul
 * compiles a service's service-router, service-splitter and service-resolver config entries into
 * this graph (agent/consul/discoverychain/compile.go): start at `StartNode`, a router (routes in
 * order, the last a catch-all Consul adds), a splitter (weighted legs) or a resolver (one target,
 * its failover targets, its load-balancer policy); every node a route or a split leads to is in
 * `Nodes`; every target a resolver names is in `Targets`. Consul has already resolved redirects,
 * default subsets and failover rewrites, and refuses entries that loop or whose weights do not sum
 * to 100, so the chain is a DAG whose leaves are resolvers.
 *
 * Durations: a target's `ConnectTimeout` and a route's `RequestTimeout` / `IdleTimeout` are Go
 * duration strings ("5s"); a resolver node's `RequestTimeout` is a number of nanoseconds (its
 * MarshalJSON converts only `ConnectTimeout`). `parseGoDuration` reads both.
 */
export interface DiscoveryChainResponse {
  Chain: CompiledDiscoveryChain;
}

export interface CompiledDiscoveryChain {
  ServiceName: string;
  Namespace?: string;
  Partition?: string;
  Datacenter: string;
  CustomizationHash?: string;
  /** True when no router, splitter or resolver entry applies: one resolver on the service itself. */
  Default?: boolean;
  Protocol?: string;
  ServiceMeta?: Record<string, string>;
  StartNode: string;
  Nodes: Record<string, DiscoveryGraphNode>;
  Targets: Record<string, DiscoveryTarget>;
}

export interface DiscoveryGraphNode {
  Type: "router" | "splitter" | "resolver";
  Name: string;
  Routes?: DiscoveryRoute[];
  Splits?: DiscoverySplit[];
  Resolver?: DiscoveryResolver;
  LoadBalancer?: LoadBalancer;
}

export interface DiscoveryResolver {
  Default?: boolean;
  ConnectTimeout?: string | number;
  RequestTimeout?: string | number;
  Target: string;
  Failover?: { Targets?: string[] };
}

export interface DiscoveryRoute {
  Definition: ServiceRoute;
  NextNode: string;
}

export interface DiscoverySplit {
  Definition?: ServiceSplit;
  /** The compiled weight, in percent (flattened splitters multiply). */
  Weight: number;
  NextNode: string;
}

export interface ServiceRoute {
  Match?: { HTTP?: ServiceRouteHTTPMatch } | null;
  Destination?: ServiceRouteDestination | null;
}

export interface ServiceRouteHTTPMatch {
  PathExact?: string;
  PathPrefix?: string;
  PathRegex?: string;
  Header?: ServiceRouteHTTPMatchHeader[] | null;
  QueryParam?: unknown[] | null;
  Methods?: string[] | null;
}

export interface ServiceRouteHTTPMatchHeader {
  Name: string;
  Present?: boolean;
  Exact?: string;
  Prefix?: string;
  Suffix?: string;
  Regex?: string;
  Invert?: boolean;
}

export interface ServiceRouteDestination {
  Service?: string;
  ServiceSubset?: string;
  Namespace?: string;
  Partition?: string;
  PrefixRewrite?: string;
  RequestTimeout?: string | number;
  IdleTimeout?: string | number;
  NumRetries?: number;
  RetryOnConnectFailure?: boolean;
  RetryOn?: string[] | null;
  RetryOnStatusCodes?: number[] | null;
  RequestHeaders?: unknown;
  ResponseHeaders?: unknown;
}

export interface ServiceSplit {
  Weight: number;
  Service?: string;
  ServiceSubset?: string;
  Namespace?: string;
  Partition?: string;
  RequestHeaders?: unknown;
  ResponseHeaders?: unknown;
}

export interface LoadBalancer {
  Policy?: string;
  RingHashConfig?: { MinimumRingSize?: number; MaximumRingSize?: number } | null;
  LeastRequestConfig?: { ChoiceCount?: number } | null;
  HashPolicies?: HashPolicy[] | null;
}

export interface HashPolicy {
  Field?: string;
  FieldValue?: string;
  CookieConfig?: unknown;
  SourceIP?: boolean;
  Terminal?: boolean;
}

export interface DiscoveryTarget {
  ID: string;
  Service: string;
  ServiceSubset?: string;
  Namespace?: string;
  Partition?: string;
  Datacenter?: string;
  Peer?: string;
  MeshGateway?: { Mode?: string };
  Subset?: { Filter?: string; OnlyPassing?: boolean };
  TransparentProxy?: { DialedDirectly?: boolean };
  ConnectTimeout?: string | number;
  External?: boolean;
  SNI?: string;
  Name?: string;
}

/**
 * The fields of each object kind that Consul 1.14.8 sends, by kind, so that a field a newer Consul
 * adds (and that might change the traffic) is reported rather than silently ignored
 * (routing-table.ts). Everything listed is either applied or reported as unsupported there.
 */
export const knownFields = {
  chain: ["ServiceName", "Namespace", "Partition", "Datacenter", "CustomizationHash", "Default", "Protocol", "ServiceMeta", "StartNode", "Nodes", "Targets"],
  node: ["Type", "Name", "Routes", "Splits", "Resolver", "LoadBalancer"],
  resolver: ["Default", "ConnectTimeout", "RequestTimeout", "Target", "Failover"],
  failover: ["Targets"],
  route: ["Definition", "NextNode"],
  routeDefinition: ["Match", "Destination"],
  match: ["HTTP"],
  httpMatch: ["PathExact", "PathPrefix", "PathRegex", "Header", "QueryParam", "Methods"],
  header: ["Name", "Present", "Exact", "Prefix", "Suffix", "Regex", "Invert"],
  destination: ["Service", "ServiceSubset", "Namespace", "Partition", "PrefixRewrite", "RequestTimeout", "IdleTimeout", "NumRetries", "RetryOnConnectFailure", "RetryOn", "RetryOnStatusCodes", "RequestHeaders", "ResponseHeaders"],
  split: ["Definition", "Weight", "NextNode"],
  splitDefinition: ["Weight", "Service", "ServiceSubset", "Namespace", "Partition", "RequestHeaders", "ResponseHeaders"],
  loadBalancer: ["Policy", "RingHashConfig", "LeastRequestConfig", "HashPolicies"],
  ringHashConfig: ["MinimumRingSize", "MaximumRingSize"],
  leastRequestConfig: ["ChoiceCount"],
  hashPolicy: ["Field", "FieldValue", "CookieConfig", "SourceIP", "Terminal"],
  target: ["ID", "Service", "ServiceSubset", "Namespace", "Partition", "Datacenter", "Peer", "MeshGateway", "Subset", "TransparentProxy", "ConnectTimeout", "External", "SNI", "Name"],
  subset: ["Filter", "OnlyPassing"],
} as const satisfies Record<string, readonly string[]>;

const goDurationUnits: Record<string, number> = { ns: 1e-6, us: 1e-3, "µs": 1e-3, "μs": 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * parseGoDuration reads a duration as Consul writes one, in milliseconds: a Go duration string
 * ("5s", "1m30s", "250ms", "1.5h") or a number of nanoseconds. Undefined for nothing, zero or
 * something unreadable (the caller reports it).
 */
export function parseGoDuration(value: string | number | undefined | null): number | undefined {
  if (value === undefined || value === null || value === "" || value === 0) return undefined;
  if (typeof value === "number") return Number.isFinite(value) && value > 0 ? value / 1e6 : undefined;
  const pattern = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/gy;
  let total = 0;
  let consumed = 0;
  for (let match = pattern.exec(value); match; match = pattern.exec(value)) {
    total += Number(match[1]) * goDurationUnits[match[2]!]!;
    consumed = pattern.lastIndex;
  }
  if (consumed !== value.length || consumed === 0) return undefined;
  return total > 0 ? total : undefined;
}
