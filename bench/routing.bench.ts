/**
 * Discovery-chain routing cost: nanoseconds per routing decision (what the mesh client does per
 * call before it picks an endpoint), on a chain compiled from Consul's JSON: a router of 10
 * routes (9 with path and header conditions, Consul's catch-all last) whose catch-all leads to a
 * 3-way splitter. Rows: a call that misses the 9 routes and lands in the split (its headers as
 * a record, as generated clients pass them, then as a `Headers`), a call the first route's header
 * takes, and the common case of a chain of one resolver (no config entries: the transport's own
 * path, which is one property read and a counter). The GC column counts collections during the
 * timed loop (v8's GCProfiler): a decision is meant to allocate nothing.
 *
 * Target (issue 22): <= 1 us per decision with 10 routes and a 3-way split.
 *
 * Run: source scripts/lib.sh && node --import tsx bench/routing.bench.ts
 */
import assert from "node:assert/strict";
import os from "node:os";
import { GCProfiler } from "node:v8";
import { EchoService } from "../gen/meshkit/echo/v1/echo_pb.js";
import type { CallEnvironment } from "../src/client/call/call.js";
import type { CompiledDiscoveryChain, DiscoveryTarget } from "../src/client/routing/chain.js";
import { ChainRouting } from "../src/client/routing/chain-routing.js";
import { compileChain, type CompiledChain, type NextSpec } from "../src/client/routing/compile.js";
import { Destination, RoutingTable, Split } from "../src/client/routing/routing-table.js";
import { createConsulClient } from "../src/platform/consul.js";
import type { EndpointSet } from "../src/client/endpoints/endpoint-set.js";
import type { Resolver } from "../src/client/discovery/resolver.js";

const decisionsPerRun = Number(process.env.BENCH_DECISIONS ?? 2_000_000);
const method = EchoService.method.echo;

function target(subset: string): DiscoveryTarget {
  return { ID: `${subset}.echo.default.default.dc1`, Service: "echo", ServiceSubset: subset, Datacenter: "dc1", Subset: { Filter: `Service.Meta.version == "${subset}"` } };
}

/** 9 routes that a plain Echo call misses (path exact/prefix/regex, with header conditions), the catch-all to a 3-way split. */
function chain(): CompiledDiscoveryChain {
  const resolver = (subset: string) => ({ Type: "resolver" as const, Name: `${subset}.echo.default.default.dc1`, Resolver: { Target: `${subset}.echo.default.default.dc1` } });
  const routes = Array.from({ length: 9 }, (_, k) => {
    const path = k < 3 ? { PathExact: `/meshkit.echo.v1.EchoService/Other${k}` } : k < 6 ? { PathPrefix: "/meshkit.echo.v1.EchoService/", Header: [{ Name: `x-route-${k}`, Exact: "on" }] } : { PathRegex: "/meshkit\\.echo\\.v1\\.EchoService/Ec.*", Header: [{ Name: "x-tenant", Regex: `tenant-${k}-[0-9]+` }] };
    return { Definition: { Match: { HTTP: path }, Destination: { ServiceSubset: k % 2 === 0 ? "v2" : "v3" } }, NextNode: `resolver:${k % 2 === 0 ? "v2" : "v3"}.echo.default.default.dc1` };
  });
  routes.push({ Definition: { Match: { HTTP: { PathPrefix: "/" } }, Destination: {} }, NextNode: "splitter:echo.default.default" } as never);
  return {
    ServiceName: "echo",
    Datacenter: "dc1",
    StartNode: "router:echo.default.default",
    Nodes: {
      "router:echo.default.default": { Type: "router", Name: "echo.default.default", Routes: routes },
      "splitter:echo.default.default": {
        Type: "splitter",
        Name: "echo.default.default",
        Splits: ["v1", "v2", "v3"].map((subset, i) => ({ Weight: [80, 15, 5][i]!, NextNode: `resolver:${subset}.echo.default.default.dc1` })),
      },
      ...Object.fromEntries(["v1", "v2", "v3"].map((subset) => [`resolver:${subset}.echo.default.default.dc1`, resolver(subset)])),
    },
    Targets: Object.fromEntries(["v1", "v2", "v3"].map((subset) => [`${subset}.echo.default.default.dc1`, target(subset)])),
  };
}

/** The routing table as ChainRouting binds it, over stand-in pools (a decision never touches them). */
function bind(compiled: CompiledChain): RoutingTable {
  const env = {} as CallEnvironment;
  const destination = (route: string, group: string) => {
    const spec = compiled.groups.get(group)!;
    return new Destination(route, env, undefined, spec.hash, [spec.primary], () => 0, [{ labels: { service: "echo", route, target: spec.primary }, count: 0 }]);
  };
  const nodeOf = (route: string, next: NextSpec) => (next.kind === "group" ? destination(route, next.group) : new Split(next.legs.map((leg) => destination(route, leg.group)), next.legs.map((leg) => leg.weight)));
  return new RoutingTable(compiled.routes?.map((route) => ({ label: route.label, matcher: route.matcher, next: nodeOf(route.label, route.next) })), undefined, destination("unmatched", [...compiled.groups.keys()][0]!));
}

function measure(decide: () => Destination | undefined): { ns: number; gcs: number } {
  let sink = 0;
  for (let i = 0; i < 500_000; i++) sink += decide() === undefined ? 0 : 1; // warm up
  const profiler = new GCProfiler();
  profiler.start();
  const started = process.hrtime.bigint();
  for (let i = 0; i < decisionsPerRun; i++) sink += decide() === undefined ? 0 : 1;
  const elapsed = Number(process.hrtime.bigint() - started);
  const gcs = profiler.stop()?.statistics.length ?? 0;
  if (sink < 0) console.error("unreachable");
  return { ns: elapsed / decisionsPerRun, gcs };
}

const compiled = compileChain(chain(), "echo");
assert.ok(!("error" in compiled));
assert.equal(compiled.routes?.length, 10);
const table = bind(compiled);
const record = { "x-tenant": "acme", "x-request-id": "8a1f" };
const headers = new Headers(record);
const first = { "x-route-3": "on" };
assert.equal(table.decide(method, first).route, "route[3]");
assert.equal(table.decide(method, record).route, "default");

// The transport's fast path: a ChainRouting whose chain is one resolver. Its Consul is a closed
// port, so the watch fails at once and the routing falls back to the transport's own path,
// exactly the state a service without config entries is in.
const routing = new ChainRouting({
  consul: createConsulClient({ host: "127.0.0.1", port: 1 }),
  service: "echo",
  selection: {},
  own: { set: {} as EndpointSet, resolver: {} as Resolver },
  env: {} as CallEnvironment,
  newBalancer: () => assert.fail(),
  newSet: () => assert.fail(),
  metrics: undefined,
  log: { warn: () => undefined, info: () => undefined },
  onChain: () => undefined,
});
await new Promise((resolve) => setTimeout(resolve, 300));
assert.equal(routing.decide(method, undefined), undefined);

const cases: [string, () => Destination | undefined][] = [
  ["10 routes missed, catch-all to a 3-way split (headers: a record)", () => table.decide(method, record)],
  ["10 routes missed, catch-all to a 3-way split (headers: a Headers)", () => table.decide(method, headers)],
  ["the first header route matches (4th route; 3 path misses cached per method)", () => table.decide(method, first)],
  ["chain of one resolver: the transport's own path", () => routing.decide(method, record)],
];

console.log(`discovery-chain routing decision cost, ${decisionsPerRun} decisions per row, ${os.cpus().length} x ${os.cpus()[0]?.model ?? "cpu"}, node ${process.version}\n`);
console.log("| case | ns per decision | GCs during the run |");
console.log("|---|---|---|");
for (const [name, decide] of cases) {
  const { ns, gcs } = measure(decide);
  console.log(`| ${name} | ${ns.toFixed(1)} ns | ${gcs} |`);
}
routing.close();
