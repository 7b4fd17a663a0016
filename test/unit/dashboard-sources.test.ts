import assert from "node:assert/strict";
import { BreakerState } from "../../gen/meshkit/dashboard/v1/dashboard_pb.js";
import { chainFrom, httpMatchText, intentionsFrom } from "../../src/reference/services/dashboard/consul-policy.js";
import { instanceHealth, instancesOf } from "../../src/reference/services/dashboard/consul-source.js";
import { spanStatus, summarize, waterfall, type JaegerTrace } from "../../src/reference/services/dashboard/jaeger-source.js";
import { clientViewsFrom, historyFrom, trafficFrom, type PromSample } from "../../src/reference/services/dashboard/prometheus-source.js";

describe("dashboard: reading Consul's answers", () => {
  it("tells passing, warning, critical and draining instances apart by their checks", () => {
    const check = (CheckID: string, Status: string) => ({ CheckID, Status, Output: `${CheckID} says ${Status}` });
    assert.equal(instanceHealth([check("serfHealth", "passing"), check("service:a", "passing")]).health, "passing");
    assert.equal(instanceHealth([check("serfHealth", "passing"), check("service:a", "warning")]).health, "warning");
    assert.equal(instanceHealth([check("serfHealth", "critical"), check("service:a", "passing")]).health, "critical");
    assert.deepEqual(instanceHealth([check("service:a", "critical")]), { health: "critical", note: "service:a: service:a says critical" });
    // Consul's maintenance mode takes the instance out of the passing set: draining, not critical.
    assert.equal(instanceHealth([check("service:a", "passing"), check("_service_maintenance:a", "critical")]).health, "draining");
    assert.equal(instanceHealth([check("_node_maintenance", "critical"), check("service:a", "passing")]).health, "draining");
  });

  it("lists instances by id with their address (the node's when the service has none) and version", () => {
    const instances = instancesOf([
      { Node: { Address: "10.0.0.2" }, Service: { ID: "b", Port: 2, Meta: { version: "1.2" } }, Checks: [] },
      { Service: { ID: "a", Address: "127.0.0.1", Port: 1, Meta: null }, Checks: [{ CheckID: "service:a", Status: "passing" }] },
    ]);
    assert.deepEqual(
      instances.map((i) => [i.id, i.address, i.port, i.health, i.version]),
      [
        ["a", "127.0.0.1", 1, "passing", ""],
        ["b", "10.0.0.2", 2, "passing", "1.2"],
      ],
    );
  });

  it("writes intentions' L7 matches and the discovery chain out for the page, the start node first", () => {
    assert.equal(httpMatchText({ PathPrefix: "/meshkit.orders.v1.OrderService/", Methods: ["POST"], PathExact: "" }), "PathPrefix /meshkit.orders.v1.OrderService/ Methods POST");
    assert.equal(httpMatchText({ Header: [{ Name: "x-canary", Exact: "1" }, { Name: "x-debug", Present: true, Invert: true }] }), "Header x-canary Exact 1 Header x-debug not Present true");
    assert.equal(httpMatchText(undefined), "any request");
    const intentions = intentionsFrom([
      { SourceName: "web", Precedence: 9, Permissions: [{ Action: "allow", HTTP: { PathExact: "/a.B/C" } }] },
      { SourceName: "*", Action: "deny", Precedence: 8 },
    ]);
    assert.deepEqual(
      intentions.map((i) => [i.source, i.action, i.permissions.map((p) => `${p.action} ${p.match}`)]),
      [
        ["web", "", ["allow PathExact /a.B/C"]],
        ["*", "deny", []],
      ],
    );
    const chain = chainFrom({
      Protocol: "grpc",
      StartNode: "router:orders",
      Nodes: {
        "resolver:orders": { Type: "resolver", Name: "orders", Resolver: { ConnectTimeout: "5s", Target: "orders.dc1", Failover: { Targets: ["orders.dc2"] } } },
        "router:orders": { Type: "router", Name: "orders", Routes: [{ Definition: { Match: { HTTP: { PathPrefix: "/" } } }, NextNode: "resolver:orders" }] },
      },
      Targets: { "orders.dc1": { ID: "orders.dc1", Service: "orders", Datacenter: "dc1" } },
    });
    assert.deepEqual(
      chain.nodes.map((n) => n.id),
      ["router:orders", "resolver:orders"],
    );
    assert.equal(chain.nodes[0]!.routes[0]!.match, "PathPrefix /");
    assert.deepEqual(chain.nodes[1]!.failoverTargets, ["orders.dc2"]);
    assert.equal(chain.targets[0]!.datacenter, "dc1");
  });
});

describe("dashboard: reading Prometheus's answers", () => {
  const vector = (metric: Record<string, string>, value: number): PromSample => ({ metric, value: [1000, String(value)] });

  it("sums calls per method and per service, counts server failures against success, leaves health checks out of a service's totals", () => {
    const calls = [
      vector({ service: "orders", exported_service: "meshkit.orders.v1.OrderService", method: "GetOrder", code: "OK" }, 9),
      vector({ service: "orders", exported_service: "meshkit.orders.v1.OrderService", method: "GetOrder", code: "UNAVAILABLE" }, 1),
      vector({ service: "orders", exported_service: "meshkit.orders.v1.OrderService", method: "CreateOrder", code: "INVALID_ARGUMENT" }, 2),
      vector({ service: "orders", exported_service: "grpc.health.v1.Health", method: "Check", code: "OK" }, 5),
    ];
    const quantiles = [
      vector({ service: "orders", exported_service: "meshkit.orders.v1.OrderService", method: "GetOrder", q: "0.99" }, 0.25),
      vector({ service: "orders", q: "0.5" }, 0.002),
      vector({ service: "orders", q: "0.95" }, Number.NaN),
    ];
    const orders = trafficFrom(calls, quantiles).get("orders")!;
    assert.equal(orders.traffic.callsPerSecond, 12);
    assert.equal(orders.traffic.successRate, 11 / 12); // INVALID_ARGUMENT is the caller's, not a failure
    assert.equal(orders.traffic.p50Ms, 2);
    assert.equal(orders.traffic.p95Ms, 0); // NaN (no calls in a bucket range) reads as none
    assert.deepEqual(
      orders.routes.map((r) => [r.method, r.traffic!.callsPerSecond, r.traffic!.successRate]),
      [
        ["Check", 5, 1],
        ["CreateOrder", 2, 1],
        ["GetOrder", 10, 0.9],
      ],
    );
    assert.equal(orders.routes.find((r) => r.method === "GetOrder")!.traffic!.p99Ms, 250);
  });

  it("gives each called service its clients' views: last report per instance, and whether the client still reports it", () => {
    const series = (metric: Record<string, string>, values: [number, string][]): PromSample => ({ metric, values });
    const caller = { service: "traffic", instance: "traffic-1" };
    const samples = [
      series({ __name__: "up", ...caller }, [
        [10, "1"],
        [11, "1"],
        [12, "1"],
      ]),
      // Instance a: reported by the last scrape. Instance b: left the pool after scrape 11, open.
      series({ __name__: "meshkit_client_breaker_state", ...caller, exported_service: "orders", exported_instance: "a" }, [[12, "0"]]),
      series({ __name__: "meshkit_client_endpoint_latency_seconds", ...caller, exported_service: "orders", exported_instance: "a" }, [[12, "0.004"]]),
      series({ __name__: "meshkit_client_endpoint_outstanding", ...caller, exported_service: "orders", exported_instance: "a" }, [[12, "3"]]),
      series({ __name__: "meshkit_client_endpoint_ejected", ...caller, exported_service: "orders", exported_instance: "a" }, [[12, "0"]]),
      series({ __name__: "meshkit_client_breaker_state", ...caller, exported_service: "orders", exported_instance: "b" }, [
        [10, "0"],
        [11, "2"],
      ]),
      series({ __name__: "meshkit_client_endpoint_ejected", ...caller, exported_service: "orders", exported_instance: "b" }, [[11, "1"]]),
    ];
    const [view] = clientViewsFrom(samples).get("orders")!;
    assert.equal(view!.clientService, "traffic");
    assert.equal(view!.clientInstance, "traffic-1");
    const [a, b] = view!.endpoints;
    assert.deepEqual([a!.instance, a!.breaker, a!.ejected, a!.outstanding, a!.latencyEstimateMs, a!.inPool], ["a", BreakerState.CLOSED, false, 3, 4, true]);
    assert.deepEqual([b!.instance, b!.breaker, b!.ejected, b!.inPool], ["b", BreakerState.OPEN, true, false]);
  });

  it("folds the history's series into points, oldest first", () => {
    const range = (stat: string, values: [number, string][]): PromSample => ({ metric: { stat }, values });
    const points = historyFrom([
      range("calls", [
        [20, "4"],
        [10, "2"],
      ]),
      range("failures", [[20, "1"]]),
      range("0.99", [[20, "0.1"]]),
    ]);
    assert.deepEqual(
      points.map((p) => [Number(p.time), p.traffic!.callsPerSecond, p.traffic!.successRate, p.traffic!.p99Ms]),
      [
        [10, 2, 1, 0],
        [20, 4, 0.75, 100],
      ],
    );
  });
});

describe("dashboard: reading Jaeger's traces", () => {
  const trace: JaegerTrace = {
    traceID: "abc",
    processes: { p1: { serviceName: "traffic" }, p2: { serviceName: "status", tags: [{ key: "host.name", value: "h" }] } },
    spans: [
      { spanID: "c", operationName: "probe", references: [{ refType: "CHILD_OF", traceID: "abc", spanID: "b" }], startTime: 1_000_300, duration: 100, processID: "p2", tags: [{ key: "error", value: true }] },
      { spanID: "a", operationName: "GetSystemStatus", references: [], startTime: 1_000_000, duration: 1000, processID: "p1", tags: [{ key: "rpc.grpc.status_code", value: 0 }] },
      { spanID: "b", operationName: "GetSystemStatus", references: [{ refType: "CHILD_OF", traceID: "abc", spanID: "a" }], startTime: 1_000_100, duration: 800, processID: "p2", tags: [] },
      { spanID: "d", operationName: "orphan", references: [{ refType: "CHILD_OF", traceID: "abc", spanID: "gone" }], startTime: 1_000_050, duration: 10, processID: "p2" },
    ],
  };

  it("orders spans parent first with their depth and offset, drawing a span whose parent is missing as a root", () => {
    const drawn = waterfall(trace);
    assert.deepEqual(
      drawn.spans.map((s) => [s.spanId, s.parentSpanId, s.depth, s.startMs, s.durationMs, s.service, s.error]),
      [
        ["a", "", 0, 0, 1, "traffic", false],
        ["b", "a", 1, 0.1, 0.8, "status", false],
        ["c", "b", 2, 0.3, 0.1, "status", true],
        ["d", "", 0, 0.05, 0.01, "status", false],
      ],
    );
    assert.equal(drawn.durationMs, 1);
    assert.equal(drawn.spans[0]!.status, "OK · grpc OK");
    assert.ok(drawn.spans[1]!.attributes.some((a) => a.key === "process: host.name" && a.value === "h"));
  });

  it("summarizes a trace by its root, length, services and errors", () => {
    const summary = summarize(trace);
    assert.deepEqual([summary.rootService, summary.rootOperation, summary.durationMs, summary.spanCount, summary.errorCount, summary.services], ["traffic", "GetSystemStatus", 1, 4, 1, ["status", "traffic"]]);
    assert.equal(spanStatus(true, 14), "ERROR · grpc UNAVAILABLE");
    assert.equal(spanStatus(false, undefined), "OK");
  });
});
