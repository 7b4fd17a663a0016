import assert from "node:assert/strict";
import { Code } from "@connectrpc/connect";
import { EchoService } from "../../gen/meshkit/echo/v1/echo_pb.js";
import type { CallEnvironment } from "../../src/client/call/call.js";
import type { CompiledDiscoveryChain, DiscoveryTarget } from "../../src/client/routing/chain.js";
import { parseGoDuration } from "../../src/client/routing/chain.js";
import { compileChain, grpcCodeOfHttpStatus, type CompiledChain } from "../../src/client/routing/compile.js";
import { readHeader } from "../../src/client/routing/headers.js";
import { Destination, RoutingTable, Split, type BoundRoute } from "../../src/client/routing/routing-table.js";

const svc = "echo";
const echo = EchoService.method.echo;
const echoStream = EchoService.method.echoStream;

function target(id: string, extra: Partial<DiscoveryTarget> = {}): DiscoveryTarget {
  const [subset, service, , , dc] = id.split(".").length === 5 ? id.split(".") : [undefined, ...id.split(".")];
  return { ID: id, Service: service!, ServiceSubset: subset, Namespace: "default", Partition: "default", Datacenter: dc!, MeshGateway: {}, Subset: {}, ConnectTimeout: "5s", ...extra };
}

/** Consul's answer for a service with no config entries (checked against 1.14.8). */
function defaultChain(): CompiledDiscoveryChain {
  return {
    ServiceName: svc,
    Namespace: "default",
    Partition: "default",
    Datacenter: "dc1",
    Default: true,
    Protocol: "tcp",
    StartNode: "resolver:echo.default.default.dc1",
    Nodes: { "resolver:echo.default.default.dc1": { Type: "resolver", Name: "echo.default.default.dc1", Resolver: { ConnectTimeout: "5s", Default: true, Target: "echo.default.default.dc1" } } },
    Targets: { "echo.default.default.dc1": target("echo.default.default.dc1") },
  };
}

/**
 * The shape Consul 1.14.8 answered for a router (a header route to v2), a 90/10 splitter and a
 * resolver with subsets, failover to dc2 and ring_hash on `x-user` (as printed by
 * `curl /v1/discovery-chain/<svc>`; the resolver's RequestTimeout in nanoseconds, as Consul sends it).
 */
function fullChain(): CompiledDiscoveryChain {
  const lb = { Policy: "ring_hash", HashPolicies: [{ Field: "header", FieldValue: "x-user" }] };
  const resolver = (subset: string) => ({
    Type: "resolver" as const,
    Name: `${subset}.echo.default.default.dc1`,
    Resolver: { ConnectTimeout: "3s", RequestTimeout: 7_000_000_000, Target: `${subset}.echo.default.default.dc1`, Failover: { Targets: [`${subset}.echo.default.default.dc2`] } },
    LoadBalancer: lb,
  });
  return {
    ServiceName: svc,
    Namespace: "default",
    Partition: "default",
    Datacenter: "dc1",
    Protocol: "grpc",
    StartNode: "router:echo.default.default",
    Nodes: {
      "resolver:v1.echo.default.default.dc1": resolver("v1"),
      "resolver:v2.echo.default.default.dc1": resolver("v2"),
      "router:echo.default.default": {
        Type: "router",
        Name: "echo.default.default",
        Routes: [
          {
            Definition: {
              Match: { HTTP: { PathPrefix: "/meshkit.echo.v1.EchoService/EchoStream", Header: [{ Name: "x-debug", Present: true }] } },
              Destination: { RequestTimeout: "2s", ServiceSubset: "v2", NumRetries: 2, RetryOn: ["unavailable"], RetryOnStatusCodes: [503, 500] },
            },
            NextNode: "resolver:v2.echo.default.default.dc1",
          },
          { Definition: { Match: { HTTP: { PathPrefix: "/" } }, Destination: { Service: "echo", Namespace: "default", Partition: "default" } }, NextNode: "splitter:echo.default.default" },
        ],
      },
      "splitter:echo.default.default": {
        Type: "splitter",
        Name: "echo.default.default",
        Splits: [
          { Definition: { Weight: 90, ServiceSubset: "v1" }, Weight: 90, NextNode: "resolver:v1.echo.default.default.dc1" },
          { Definition: { Weight: 10, ServiceSubset: "v2" }, Weight: 10, NextNode: "resolver:v2.echo.default.default.dc1" },
        ],
        LoadBalancer: lb,
      },
    },
    Targets: Object.fromEntries(
      ["v1", "v2"].flatMap((subset) =>
        ["dc1", "dc2"].map((dc) => [`${subset}.echo.default.default.${dc}`, target(`${subset}.echo.default.default.${dc}`, { ConnectTimeout: "3s", Subset: { Filter: `Service.Meta.version == "${subset.slice(1)}"` } })]),
      ),
    ),
  };
}

function compiled(chain: CompiledDiscoveryChain): CompiledChain {
  const result = compileChain(chain, svc);
  assert.ok(!("error" in result), "error" in result ? result.error : "");
  return result;
}

/** A routing table over stand-in destinations: each is known by its route and first target. */
function table(chain: CompiledChain, random: () => number = Math.random): RoutingTable {
  const env = {} as CallEnvironment;
  const destination = (route: string, group: string) => {
    const spec = chain.groups.get(group)!;
    return new Destination(route, env, undefined, spec.hash, [spec.primary, ...spec.failover], () => 0, [{ labels: { service: svc, route, target: spec.primary }, count: 0 }]);
  };
  const nodeOf = (route: string, next: NonNullable<CompiledChain["start"]>) =>
    next.kind === "group" ? destination(route, next.group) : new Split(next.legs.map((leg) => destination(route, leg.group)), next.legs.map((leg) => leg.weight), random);
  const routes: BoundRoute[] | undefined = chain.routes?.map((route) => ({ label: route.label, matcher: route.matcher, next: nodeOf(route.label, route.next) }));
  return new RoutingTable(routes, chain.start && nodeOf("default", chain.start), destination("unmatched", [...chain.groups.keys()][0]!));
}

const where = (d: Destination) => `${d.route} -> ${d.targets[0]}`;

describe("discovery chain: compile", () => {
  it("reads Consul's durations: Go strings and nanoseconds", () => {
    assert.equal(parseGoDuration("5s"), 5000);
    assert.equal(parseGoDuration("1m30s"), 90_000);
    assert.equal(parseGoDuration("250ms"), 250);
    assert.equal(parseGoDuration("1.5h"), 5_400_000);
    assert.equal(parseGoDuration(7_000_000_000), 7000);
    assert.equal(parseGoDuration(""), undefined);
    assert.equal(parseGoDuration("0s"), undefined);
    assert.equal(parseGoDuration("5 s"), undefined);
    assert.equal(parseGoDuration("soon"), undefined);
  });

  it("a chain of one resolver on the service itself is trivial: the transport's own path", () => {
    const chain = compiled(defaultChain());
    assert.equal(chain.trivial, true);
    assert.deepEqual(chain.problems, []);
    // Anything to apply makes it not trivial: a timeout, a balancer, a failover, a subset.
    const timed = defaultChain();
    timed.Nodes["resolver:echo.default.default.dc1"]!.Resolver!.RequestTimeout = 1_000_000_000;
    assert.equal(compiled(timed).trivial, false);
    const balanced = defaultChain();
    balanced.Nodes["resolver:echo.default.default.dc1"]!.LoadBalancer = { Policy: "least_request" };
    const lb = compiled(balanced);
    assert.equal(lb.trivial, false);
    assert.equal([...lb.groups.values()][0]!.balancer?.name, "least_outstanding");
    // Compiled for another service (a transport of "echo2" reading echo's chain): not its own.
    assert.equal((compileChain(defaultChain(), "echo2") as CompiledChain).trivial, false);
  });

  it("compiles a router, a splitter and resolvers: targets, subsets' filters, failover, balancer, hash policy, timeouts, retries", () => {
    const chain = compiled(fullChain());
    assert.equal(chain.trivial, false);
    assert.deepEqual(chain.problems, []);
    assert.deepEqual(chain.routes?.map((r) => r.label), ["route[0]", "default"]);
    const [debug, rest] = chain.routes!;
    assert.equal(debug!.timeoutMs, 2000);
    assert.equal(debug!.retry?.maxAttempts, 3);
    assert.deepEqual([...debug!.retry!.codes].sort(), [Code.Unknown, Code.Unavailable].sort());
    assert.equal(rest!.retry, undefined);
    assert.equal(rest!.next.kind, "split");
    const v1 = chain.groups.get("resolver:v1.echo.default.default.dc1")!;
    assert.deepEqual(v1.failover, ["v1.echo.default.default.dc2"]);
    assert.equal(v1.balancer?.name, "ring_hash");
    assert.deepEqual(v1.hash, [{ header: "x-user", constant: undefined, terminal: false }]);
    assert.equal(v1.requestTimeoutMs, 7000);
    const dc2 = chain.targets.get("v1.echo.default.default.dc2")!;
    assert.deepEqual({ ...dc2 }, { id: "v1.echo.default.default.dc2", service: "echo", subset: "v1", datacenter: "dc2", local: false, filter: 'Service.Meta.version == "1"', resolvable: true, connectTimeoutMs: 3000 });
  });

  it("reports unknown and unsupported fields, and still applies the rest", () => {
    const chain = fullChain();
    (chain.Nodes["router:echo.default.default"]!.Routes![0]!.Definition.Destination as Record<string, unknown>).PrefixRewrite = "/x";
    (chain.Nodes["router:echo.default.default"]!.Routes![0]!.Definition.Destination as Record<string, unknown>).FancyNewThing = true;
    chain.Nodes["router:echo.default.default"]!.Routes![0]!.Definition.Destination!.RetryOn = ["unavailable", "retriable-4xx"];
    chain.Nodes["splitter:echo.default.default"]!.Splits![0]!.Definition!.RequestHeaders = { Set: { a: "b" } };
    chain.Nodes["resolver:v1.echo.default.default.dc1"]!.LoadBalancer = { Policy: "ring_hash", HashPolicies: [{ Field: "cookie", FieldValue: "session" }, { Field: "header", FieldValue: "X-User", Terminal: true }] };
    chain.Targets["v2.echo.default.default.dc2"]!.Peer = "other-cluster";
    const result = compiled(chain);
    const kinds = result.problems.map((p) => `${p.kind}: ${p.message}`);
    assert.ok(kinds.some((k) => k.startsWith("unknown_field") && k.includes("FancyNewThing")), kinds.join("\n"));
    assert.ok(kinds.some((k) => k.startsWith("unsupported_field") && k.includes("PrefixRewrite")));
    assert.ok(kinds.some((k) => k.startsWith("unsupported_field") && k.includes("retriable-4xx")));
    assert.ok(kinds.some((k) => k.startsWith("unsupported_field") && k.includes("RequestHeaders")));
    assert.ok(kinds.some((k) => k.startsWith("unsupported_field") && k.includes("cookie")));
    assert.ok(kinds.some((k) => k.startsWith("unsupported_target") && k.includes("other-cluster")));
    // The rest applies.
    assert.deepEqual(result.groups.get("resolver:v1.echo.default.default.dc1")!.hash, [{ header: "x-user", constant: undefined, terminal: true }]);
    assert.equal(result.targets.get("v2.echo.default.default.dc2")!.resolvable, false);
    assert.equal(result.routes!.length, 2);
  });

  it("skips a route whose regex does not compile, with a problem, and keeps the others", () => {
    const chain = fullChain();
    const routes = chain.Nodes["router:echo.default.default"]!.Routes!;
    routes.unshift({ Definition: { Match: { HTTP: { PathRegex: "/meshkit.echo.v1.EchoService/(Echo" } }, Destination: { ServiceSubset: "v2" } }, NextNode: "resolver:v2.echo.default.default.dc1" });
    routes.unshift({ Definition: { Match: { HTTP: { Header: [{ Name: "x-a", Regex: "(?=lookahead)" }] } }, Destination: { ServiceSubset: "v2" } }, NextNode: "resolver:v2.echo.default.default.dc1" });
    const result = compiled(chain);
    assert.equal(result.problems.filter((p) => p.kind === "invalid_regex").length, 2);
    assert.deepEqual(result.routes!.map((r) => r.label), ["route[2]", "default"]);
  });

  it("refuses a chain whose start node is missing; skips a route that leads nowhere", () => {
    const broken = defaultChain();
    broken.StartNode = "resolver:nowhere";
    assert.ok("error" in compileChain(broken, svc));
    const chain = fullChain();
    chain.Nodes["router:echo.default.default"]!.Routes![0]!.NextNode = "resolver:gone";
    const result = compiled(chain);
    assert.ok(result.problems.some((p) => p.kind === "invalid_chain" && p.message.includes("resolver:gone")));
    assert.deepEqual(result.routes!.map((r) => r.label), ["default"]);
  });

  it("maps HTTP statuses onto gRPC codes as gRPC's own mapping does", () => {
    assert.equal(grpcCodeOfHttpStatus(503), Code.Unavailable);
    assert.equal(grpcCodeOfHttpStatus(429), Code.Unavailable);
    assert.equal(grpcCodeOfHttpStatus(404), Code.Unimplemented);
    assert.equal(grpcCodeOfHttpStatus(500), Code.Unknown);
  });
});

describe("discovery chain: per-call decision", () => {
  it("takes the first route whose path and headers match, the catch-all last", () => {
    const chain = fullChain();
    const routes = chain.Nodes["router:echo.default.default"]!.Routes!;
    const v2 = "resolver:v2.echo.default.default.dc1";
    const route = (http: Record<string, unknown>) => ({ Definition: { Match: { HTTP: http }, Destination: { ServiceSubset: "v2" } }, NextNode: v2 });
    routes.splice(0, 1,
      route({ PathExact: "/meshkit.echo.v1.EchoService/Echo", Header: [{ Name: "x-exact", Exact: "yes" }] }),
      route({ PathPrefix: "/meshkit.echo.v1.", Header: [{ Name: "x-prefix", Prefix: "can" }] }),
      route({ PathRegex: "/meshkit\\.echo\\.v1\\.EchoService/Echo(Stream)?", Header: [{ Name: "x-suffix", Suffix: "-beta" }] }),
      route({ Header: [{ Name: "x-regex", Regex: "user-[0-9]+" }] }),
      route({ Header: [{ Name: "x-present", Present: true }, { Name: "x-absent", Present: true, Invert: true }] }),
      route({ Header: [{ Name: "x-not", Exact: "no", Invert: true }, { Name: "x-inverted", Present: true }] }),
      route({ PathExact: "/meshkit.echo.v1.EchoService/EchoStream" }),
      route({ Methods: ["GET"] }),
    );
    const decide = table(compiled(chain), () => 0.5);
    const at = (method: typeof echo | typeof echoStream, headers?: Record<string, string>) => where(decide.decide(method, headers));
    assert.equal(at(echo, { "x-exact": "yes" }), "route[0] -> v2.echo.default.default.dc1");
    assert.equal(at(echo, { "X-Exact": "yes" }), "route[0] -> v2.echo.default.default.dc1", "header names are case-insensitive");
    assert.equal(at(echo, { "x-exact": "no" }).startsWith("default"), true);
    assert.equal(at(echo, { "x-prefix": "canary" }), "route[1] -> v2.echo.default.default.dc1");
    assert.equal(at(echoStream, { "x-suffix": "v3-beta" }), "route[2] -> v2.echo.default.default.dc1");
    assert.equal(at(echo, { "x-regex": "user-42" }), "route[3] -> v2.echo.default.default.dc1");
    assert.equal(at(echo, { "x-regex": "user-42x" }).startsWith("default"), true, "a regex matches the whole value");
    assert.equal(at(echo, { "x-present": "" }), "route[4] -> v2.echo.default.default.dc1");
    assert.equal(at(echo, { "x-present": "1", "x-absent": "1" }).startsWith("default"), true);
    assert.equal(at(echo, { "x-not": "yes", "x-inverted": "1" }), "route[5] -> v2.echo.default.default.dc1");
    assert.equal(at(echo, { "x-inverted": "1" }).startsWith("default"), true, "an inverted Exact needs the header present");
    assert.equal(at(echoStream), "route[6] -> v2.echo.default.default.dc1");
    assert.equal(at(echo), "default -> v1.echo.default.default.dc1", "random 0.5 of 90/10 is v1");
    // Headers in every form a caller may give them.
    assert.equal(where(decide.decide(echo, new Headers({ "x-prefix": "canary" }))), "route[1] -> v2.echo.default.default.dc1");
    assert.equal(where(decide.decide(echo, [["x-prefix", "canary"]])), "route[1] -> v2.echo.default.default.dc1");
  });

  it("splits by weight, per call", () => {
    let seed = 7;
    const random = () => ((seed = (seed * 16807) % 2147483647) - 1) / 2147483646;
    const chain = fullChain();
    chain.StartNode = "splitter:echo.default.default";
    const decide = table(compiled(chain), random);
    let v2 = 0;
    for (let i = 0; i < 100_000; i++) if (decide.decide(echo, undefined).targets[0]!.startsWith("v2")) v2++;
    assert.ok(Math.abs(v2 / 1000 - 10) < 0.5, `${v2 / 1000}%`);
  });

  it("reads a hash key from the headers the policies name", () => {
    const chain = compiled(fullChain());
    const decide = table(chain, () => 0.5);
    const destination = decide.decide(echo, { "x-user": "alice" });
    assert.equal(destination.hashKey({ "x-user": "alice" }), "alice");
    assert.equal(destination.hashKey(new Headers({ "X-User": "bob" })), "bob");
    assert.equal(destination.hashKey({}), undefined);
  });

  it("reads headers from a Headers, a record or pairs", () => {
    assert.equal(readHeader(new Headers({ A: "1" }), "a"), "1");
    assert.equal(readHeader({ A: "1" }, "a"), "1");
    assert.equal(readHeader([["A", "1"], ["a", "2"]], "a"), "1, 2");
    assert.equal(readHeader(undefined, "a"), undefined);
  });
});
