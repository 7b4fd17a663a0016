import { Code } from "@connectrpc/connect";
import type { RingHashOptions } from "../balancing/ring-hash.js";
import { knownFields, parseGoDuration, type CompiledDiscoveryChain, type DiscoveryGraphNode, type HashPolicy, type LoadBalancer, type ServiceRouteDestination } from "./chain.js";
import { compileRouteMatch, type RouteMatcher } from "./route-match.js";
import type { Problem } from "./problems.js";

/** TargetSpec is one chain target: which instances (service, subset filter, datacenter). */
export interface TargetSpec {
  /** Consul's target id, `[subset.]service.namespace.partition.datacenter`: the `target` label. */
  readonly id: string;
  readonly service: string;
  readonly subset: string | undefined;
  readonly datacenter: string;
  /** Whether the datacenter is the one the chain was compiled in (queries then name none). */
  readonly local: boolean;
  /** The subset's filter expression, which Consul evaluates in the health query. */
  readonly filter: string | undefined;
  /** Whether this client can resolve it (a cluster peer's cannot). */
  readonly resolvable: boolean;
  readonly connectTimeoutMs: number | undefined;
}

/** BalancerSpec is a resolver's `LoadBalancer.Policy` as a meshkit balancer. */
export interface BalancerSpec {
  readonly name: "round_robin" | "random" | "least_outstanding" | "ring_hash";
  readonly ring: RingHashOptions | undefined;
  /** A stable text of the above, so equal specs share endpoint sets across chain versions. */
  readonly key: string;
}

/** HashPolicySpec is one of `LoadBalancer.HashPolicies` that a gRPC call can carry. */
export interface HashPolicySpec {
  /** A request header to hash on (lower case). */
  readonly header: string | undefined;
  /** A fixed value (`SourceIP`: this client's address is the same for every call). */
  readonly constant: string | undefined;
  readonly terminal: boolean;
}

/** GroupSpec is one resolver node: its target, its failover targets in order, how it balances. */
export interface GroupSpec {
  readonly node: string;
  readonly primary: string;
  readonly failover: readonly string[];
  readonly balancer: BalancerSpec | undefined;
  readonly hash: readonly HashPolicySpec[];
  readonly requestTimeoutMs: number | undefined;
}

/** RetrySpec is a route's retry policy: attempts and the codes worth another attempt. */
export interface RetrySpec {
  readonly maxAttempts: number;
  readonly codes: ReadonlySet<Code>;
}

/** NextSpec is where a route (or the chain's start) sends a call: one resolver, or a weighted split. */
export type NextSpec =
  | { readonly kind: "group"; readonly group: string }
  | { readonly kind: "split"; readonly legs: readonly { readonly group: string; readonly weight: number }[]; readonly hash: readonly HashPolicySpec[] };

export interface RouteSpec {
  /** `route[i]` in the router's order, `default` for the catch-all Consul appends. */
  readonly label: string;
  readonly matcher: RouteMatcher;
  readonly next: NextSpec;
  readonly timeoutMs: number | undefined;
  readonly retry: RetrySpec | undefined;
}

/** CompiledChain is a discovery chain ready to bind to endpoint sets (routing-table.ts). */
export interface CompiledChain {
  readonly serviceName: string;
  readonly datacenter: string;
  /** The router's routes in order, when the chain starts with a router. */
  readonly routes: readonly RouteSpec[] | undefined;
  /** Where every call goes, when the chain starts with a splitter or a resolver. */
  readonly start: NextSpec | undefined;
  readonly groups: ReadonlyMap<string, GroupSpec>;
  readonly targets: ReadonlyMap<string, TargetSpec>;
  readonly problems: readonly Problem[];
  /**
   * True when the chain is one resolver on the service itself, with nothing to apply: no subset,
   * no other datacenter, no failover, no balancer, no timeout. Calls then take the transport's
   * own path, exactly as without a chain.
   */
  readonly trivial: boolean;
}

/**
 * compileChain turns Consul's compiled discovery chain into what the mesh client applies per
 * call. Pure: no I/O, no clock. Everything the client cannot apply is listed in `problems`, and
 * the rest still applies; `{ error }` when nothing can (no start node).
 */
export function compileChain(chain: CompiledDiscoveryChain, ownService: string): CompiledChain | { error: string; problems: Problem[] } {
  const problems: Problem[] = [];
  const unknown = (object: unknown, kind: keyof typeof knownFields, where: string) => reportUnknownFields(object, kind, where, problems);
  unknown(chain, "chain", "chain");
  const nodes = chain.Nodes ?? {};
  const startNode = nodes[chain.StartNode];
  if (!startNode) return { error: `the chain's start node ${JSON.stringify(chain.StartNode)} is not among its nodes`, problems };

  const groups = new Map<string, GroupSpec>();
  const targets = new Map<string, TargetSpec>();

  const targetOf = (id: string, where: string): TargetSpec | undefined => {
    const existing = targets.get(id);
    if (existing) return existing;
    const target = chain.Targets?.[id];
    if (!target) {
      problems.push({ kind: "invalid_chain", message: `${where} names target ${JSON.stringify(id)}, which is not among the chain's targets` });
      return undefined;
    }
    const here = `target ${id}`;
    unknown(target, "target", here);
    unknown(target.Subset, "subset", `${here}.Subset`);
    if (target.Peer) problems.push({ kind: "unsupported_target", message: `${here} is in cluster peer ${JSON.stringify(target.Peer)}, which meshkit does not resolve: it has no instances` });
    if (target.MeshGateway?.Mode) problems.push({ kind: "unsupported_field", message: `${here}.MeshGateway.Mode ${JSON.stringify(target.MeshGateway.Mode)}: meshkit dials instances directly, never through a mesh gateway` });
    if (target.External) problems.push({ kind: "unsupported_field", message: `${here} is External (an ExternalSNI service): meshkit dials its instances as any other` });
    const datacenter = target.Datacenter || chain.Datacenter;
    const spec: TargetSpec = {
      id,
      service: target.Service,
      subset: target.ServiceSubset || undefined,
      datacenter,
      local: datacenter === chain.Datacenter,
      filter: target.Subset?.Filter || undefined,
      resolvable: !target.Peer,
      connectTimeoutMs: parseGoDuration(target.ConnectTimeout),
    };
    targets.set(id, spec);
    return spec;
  };

  const groupOf = (name: string, where: string): GroupSpec | undefined => {
    const existing = groups.get(name);
    if (existing) return existing;
    const node = nodes[name];
    if (!node || node.Type !== "resolver" || !node.Resolver) {
      problems.push({ kind: "invalid_chain", message: `${where} leads to ${JSON.stringify(name)}, which is not a resolver node of the chain: skipped` });
      return undefined;
    }
    unknown(node, "node", name);
    unknown(node.Resolver, "resolver", `${name}.Resolver`);
    unknown(node.Resolver.Failover, "failover", `${name}.Resolver.Failover`);
    const primary = targetOf(node.Resolver.Target, name);
    if (!primary) return undefined;
    const failover: string[] = [];
    for (const id of node.Resolver.Failover?.Targets ?? []) if (id !== primary.id && targetOf(id, `${name}'s failover`)) failover.push(id);
    const { balancer, hash } = loadBalancerOf(node.LoadBalancer, `${name}.LoadBalancer`, problems);
    const spec: GroupSpec = { node: name, primary: primary.id, failover, balancer, hash, requestTimeoutMs: parseGoDuration(node.Resolver.RequestTimeout) };
    groups.set(name, spec);
    return spec;
  };

  /** Where a node sends calls: a resolver as one group, a splitter as its legs (nested splitters multiplied out). */
  const nextOf = (name: string, where: string, depth = 0): NextSpec | undefined => {
    const node = nodes[name];
    if (node?.Type === "splitter") {
      const legs: { group: string; weight: number }[] = [];
      collectLegs(node, 1, depth);
      if (legs.length === 0) {
        problems.push({ kind: "invalid_chain", message: `${where}: splitter ${name} has no usable leg: skipped` });
        return undefined;
      }
      return { kind: "split", legs, hash: loadBalancerOf(node.LoadBalancer, `${name}.LoadBalancer`, problems, false).hash };

      function collectLegs(splitter: DiscoveryGraphNode, scale: number, level: number): void {
        unknown(splitter, "node", splitter.Name);
        for (const [index, split] of (splitter.Splits ?? []).entries()) {
          const here = `${splitter.Name}.Splits[${index}]`;
          unknown(split, "split", here);
          unknown(split.Definition, "splitDefinition", `${here}.Definition`);
          if (split.Definition?.RequestHeaders || split.Definition?.ResponseHeaders) {
            problems.push({ kind: "unsupported_field", message: `${here}.Definition.RequestHeaders/ResponseHeaders: header rewriting is a proxy's; not applied` });
          }
          const weight = (Number(split.Weight) || 0) * scale;
          if (weight <= 0) continue; // a 0% leg takes nothing
          const next = nodes[split.NextNode];
          if (next?.Type === "splitter" && level < 8) collectLegs(next, weight / 100, level + 1);
          else {
            const group = groupOf(split.NextNode, here);
            if (group) legs.push({ group: group.node, weight });
          }
        }
      }
    }
    const group = groupOf(name, where);
    return group && { kind: "group", group: group.node };
  };

  let routes: RouteSpec[] | undefined;
  let start: NextSpec | undefined;
  if (startNode.Type === "router") {
    unknown(startNode, "node", startNode.Name);
    routes = [];
    const all = startNode.Routes ?? [];
    for (const [index, route] of all.entries()) {
      const label = index === all.length - 1 ? "default" : `route[${index}]`;
      const where = `${startNode.Name}.Routes[${index}]`;
      unknown(route, "route", where);
      unknown(route.Definition, "routeDefinition", `${where}.Definition`);
      unknown(route.Definition?.Match, "match", `${where}.Match`);
      unknown(route.Definition?.Match?.HTTP, "httpMatch", `${where}.Match.HTTP`);
      for (const [h, header] of (route.Definition?.Match?.HTTP?.Header ?? []).entries()) unknown(header, "header", `${where}.Match.HTTP.Header[${h}]`);
      const matcher = compileRouteMatch(route.Definition?.Match?.HTTP, `${where}.Match.HTTP`, problems);
      if (!matcher || !matcher.possible) continue;
      const next = nextOf(route.NextNode, where);
      if (!next) continue;
      const destination = route.Definition?.Destination ?? undefined;
      unknown(destination, "destination", `${where}.Destination`);
      routes.push({ label, matcher, next, timeoutMs: parseGoDuration(destination?.RequestTimeout), retry: retryOf(destination, `${where}.Destination`, problems) });
      reportUnsupportedDestination(destination, `${where}.Destination`, problems);
    }
    if (routes.length === 0) return { error: `no route of ${startNode.Name} can be used`, problems };
  } else {
    start = nextOf(chain.StartNode, "the chain's start");
    if (!start) return { error: `the chain's start node ${startNode.Name} cannot be used`, problems };
  }

  const startGroup = start?.kind === "group" ? groups.get(start.group) : undefined;
  const startTarget = startGroup && targets.get(startGroup.primary);
  const trivial =
    startGroup !== undefined &&
    startTarget !== undefined &&
    startTarget.service === ownService &&
    startTarget.local &&
    startTarget.filter === undefined &&
    startTarget.resolvable &&
    startGroup.failover.length === 0 &&
    startGroup.balancer === undefined &&
    startGroup.hash.length === 0 &&
    startGroup.requestTimeoutMs === undefined;
  return { serviceName: chain.ServiceName, datacenter: chain.Datacenter, routes, start, groups, targets, problems, trivial };
}

/** The balancer and hash policies of a node's `LoadBalancer` (the policy only for resolvers). */
function loadBalancerOf(lb: LoadBalancer | undefined, where: string, problems: Problem[], withPolicy = true): { balancer: BalancerSpec | undefined; hash: HashPolicySpec[] } {
  if (!lb) return { balancer: undefined, hash: [] };
  reportUnknownFields(lb, "loadBalancer", where, problems);
  reportUnknownFields(lb.RingHashConfig, "ringHashConfig", `${where}.RingHashConfig`, problems);
  reportUnknownFields(lb.LeastRequestConfig, "leastRequestConfig", `${where}.LeastRequestConfig`, problems);
  let balancer: BalancerSpec | undefined;
  if (withPolicy) {
    const policy = lb.Policy ?? "";
    const name = policy === "least_request" ? "least_outstanding" : policy === "maglev" ? "ring_hash" : policy;
    if (name === "round_robin" || name === "random" || name === "least_outstanding" || name === "ring_hash") {
      const ring = name === "ring_hash" ? { maxRingSize: lb.RingHashConfig?.MaximumRingSize || undefined } : undefined;
      if (name === "ring_hash" && lb.RingHashConfig?.MinimumRingSize) {
        problems.push({ kind: "unsupported_field", message: `${where}.RingHashConfig.MinimumRingSize: the ring has 128 points per unit of weight whatever the set's size, so that a change of membership moves only that instance's keys` });
      }
      balancer = { name, ring, key: JSON.stringify([name, ring ?? null]) };
    } else if (policy !== "") {
      problems.push({ kind: "unsupported_field", message: `${where}.Policy ${JSON.stringify(policy)} is not known: the transport's own balancer applies` });
    }
    const choices = lb.LeastRequestConfig?.ChoiceCount;
    if (choices !== undefined && choices !== 0 && choices !== 2) {
      problems.push({ kind: "unsupported_field", message: `${where}.LeastRequestConfig.ChoiceCount ${choices}: least_outstanding always draws 2` });
    }
  }
  const hash: HashPolicySpec[] = [];
  for (const [index, policy] of (lb.HashPolicies ?? []).entries()) {
    const spec = hashPolicyOf(policy, `${where}.HashPolicies[${index}]`, problems);
    if (spec) hash.push(spec);
  }
  return { balancer, hash };
}

function hashPolicyOf(policy: HashPolicy, where: string, problems: Problem[]): HashPolicySpec | undefined {
  reportUnknownFields(policy, "hashPolicy", where, problems);
  const terminal = policy.Terminal === true;
  if (policy.SourceIP) return { header: undefined, constant: "source-ip", terminal };
  if (policy.Field === "header" && policy.FieldValue) return { header: policy.FieldValue.toLowerCase(), constant: undefined, terminal };
  problems.push({ kind: "unsupported_field", message: `${where}: hashing on ${policy.Field ?? "nothing"} ${JSON.stringify(policy.FieldValue ?? "")} is not possible for a gRPC call (only a request header or SourceIP): ignored` });
  return undefined;
}

/**
 * Envoy's `retry_on` conditions as gRPC codes: the gRPC ones name their code
 * (x-envoy-retry-grpc-on); the HTTP ones cover what a gRPC client sees of an HTTP 5xx
 * (UNAVAILABLE for 502-504, UNKNOWN otherwise, per gRPC's HTTP-to-gRPC status mapping) and of a
 * reset connection (UNAVAILABLE here, attemptError). Connection failures and refused streams are
 * always retried by meshkit (the request never left), so they add no code.
 */
const retryOnCodes: Record<string, readonly Code[]> = {
  cancelled: [Code.Canceled],
  "deadline-exceeded": [Code.DeadlineExceeded],
  internal: [Code.Internal],
  "resource-exhausted": [Code.ResourceExhausted],
  unavailable: [Code.Unavailable],
  "5xx": [Code.Unavailable, Code.Unknown],
  "gateway-error": [Code.Unavailable],
  reset: [Code.Unavailable],
  "connect-failure": [],
  "refused-stream": [],
  "retriable-status-codes": [],
};

/** gRPC's mapping of an HTTP status to the code a gRPC client reports (doc/http-grpc-status-mapping.md). */
export function grpcCodeOfHttpStatus(status: number): Code {
  switch (status) {
    case 400:
      return Code.Internal;
    case 401:
      return Code.Unauthenticated;
    case 403:
      return Code.PermissionDenied;
    case 404:
      return Code.Unimplemented;
    case 429:
    case 502:
    case 503:
    case 504:
      return Code.Unavailable;
    default:
      return Code.Unknown;
  }
}

/**
 * retryOf maps a route's retry settings onto meshkit's retry policy (Envoy's route retry policy,
 * agent/xds/routes.go getRetryPolicyForDestination): `NumRetries` retries (1 when only
 * conditions are set, Envoy's default), on the codes `RetryOn` and `RetryOnStatusCodes` name.
 * Undefined when the route sets none: the transport's own policy applies.
 */
function retryOf(destination: ServiceRouteDestination | undefined, where: string, problems: Problem[]): RetrySpec | undefined {
  if (!destination) return undefined;
  const numRetries = Number(destination.NumRetries ?? 0);
  const on = destination.RetryOn ?? [];
  const statuses = destination.RetryOnStatusCodes ?? [];
  if (numRetries <= 0 && !destination.RetryOnConnectFailure && on.length === 0 && statuses.length === 0) return undefined;
  const codes = new Set<Code>();
  for (const condition of on) {
    const mapped = retryOnCodes[condition];
    if (mapped) for (const code of mapped) codes.add(code);
    else problems.push({ kind: "unsupported_field", message: `${where}.RetryOn ${JSON.stringify(condition)} has no gRPC meaning here: ignored` });
  }
  for (const status of statuses) codes.add(grpcCodeOfHttpStatus(status));
  return { maxAttempts: (numRetries > 0 ? numRetries : 1) + 1, codes };
}

function reportUnsupportedDestination(destination: ServiceRouteDestination | undefined, where: string, problems: Problem[]): void {
  if (!destination) return;
  if (destination.PrefixRewrite) problems.push({ kind: "unsupported_field", message: `${where}.PrefixRewrite: a gRPC path names the method; not rewritten` });
  if (parseGoDuration(destination.IdleTimeout) !== undefined) problems.push({ kind: "unsupported_field", message: `${where}.IdleTimeout: not applied (streams end with their deadline or their caller)` });
  if (destination.RequestHeaders || destination.ResponseHeaders) problems.push({ kind: "unsupported_field", message: `${where}.RequestHeaders/ResponseHeaders: header rewriting is a proxy's; not applied` });
}

/** Reports the fields of `object` that Consul 1.14.8 does not send for its kind (a newer Consul's). */
function reportUnknownFields(object: unknown, kind: keyof typeof knownFields, where: string, problems: Problem[]): void {
  if (object === null || typeof object !== "object") return;
  const known: readonly string[] = knownFields[kind];
  for (const field of Object.keys(object)) {
    if (!known.includes(field)) problems.push({ kind: "unknown_field", message: `${where}.${field} is not a field meshkit knows (Consul 1.14's chain has none such): ignored` });
  }
}
