import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import { OrderService } from "../../gen/meshkit/orders/v1/orders_pb.js";
import type { ChainLeg } from "../../src/grpc-js/chain-resolution.js";
import { chainServiceConfig, legPolicy, registerChainBalancers } from "../../src/grpc-js/chain-service-config.js";
import { aggregateTargets, WeightedTargetPicker, type TargetState } from "../../src/grpc-js/load-balancer-weighted-target.js";
import { recommendedServiceConfig } from "../../src/grpc-js/service-config.js";

const State = grpc.connectivityState;

/** A picker that answers with its own name (as the subchannel), so a test sees which target was drawn. */
function namedPicker(name: string): grpc.experimental.Picker {
  return { pick: () => ({ pickResultType: grpc.experimental.PickResultType.COMPLETE, subchannel: name as never, status: null, onCallStarted: null, onCallEnded: null }) };
}
const pickArgs: grpc.experimental.PickArgs = { metadata: new grpc.Metadata(), extraPickInfo: {} };
const drawn = (picker: grpc.experimental.Picker) => picker.pick(pickArgs).subchannel as unknown as string;

/** Park-Miller: reproducible draws, so the shares below are the same on every run. */
function seeded(seed = 42): () => number {
  return () => ((seed = (seed * 16807) % 2147483647) - 1) / 2147483646;
}

const target = (name: string, weight: number, state: grpc.connectivityState, endpointCount = 1): TargetState => ({ name, weight, endpointCount, state, picker: namedPicker(name), errorMessage: state === State.TRANSIENT_FAILURE ? "connection refused" : null });

describe("meshkit_weighted_target: the draw between a split's targets", () => {
  it("draws each target in proportion to its weight (90/10 within 0.3 points over 100,000 picks)", () => {
    const picker = new WeightedTargetPicker([{ picker: namedPicker("v1"), weight: 90 }, { picker: namedPicker("v2"), weight: 10 }], seeded());
    let v2 = 0;
    for (let i = 0; i < 100_000; i++) if (drawn(picker) === "v2") v2++;
    assert.ok(Math.abs(v2 / 1000 - 10) < 0.3, `${v2 / 1000}%`);
  });

  it("shares calls among READY targets only: a target whose connections are down or still connecting gets none", () => {
    const { state, picker } = aggregateTargets([target("v1", 50, State.READY), target("v2", 30, State.TRANSIENT_FAILURE), target("v3", 20, State.CONNECTING)], seeded());
    assert.equal(state, State.READY);
    const names = new Set(Array.from({ length: 1000 }, () => drawn(picker!)));
    assert.deepEqual([...names], ["v1"]);
  });

  it("leaves out a target without endpoints, so an idle empty one never holds calls back", () => {
    assert.equal(aggregateTargets([target("v1", 90, State.CONNECTING), target("v2", 10, State.IDLE, 0)]).state, State.CONNECTING);
    const failed = aggregateTargets([target("v1", 90, State.TRANSIENT_FAILURE), target("v2", 10, State.IDLE, 0)]);
    assert.equal(failed.state, State.TRANSIENT_FAILURE);
    assert.match(failed.errorMessage!, /v1: connection refused/);
  });
});

const instance = (port: number, id = `i-${port}`, weight = 1) => ({ id, address: "127.0.0.1", port, weight, tags: [], meta: {} });
const leg = (name: string, weight: number, ports: number[], balancer?: "round_robin" | "random" | "least_outstanding" | "ring_hash"): ChainLeg => ({
  name,
  weight,
  instances: ports.map((port) => instance(port)),
  service: name,
  balancer: balancer && { name: balancer, ring: undefined, key: balancer },
  hash: balancer === "ring_hash" ? [{ header: "x-user", constant: undefined, terminal: false }] : [],
});

describe("the service config a consul: resolver sends for a chain", () => {
  before(registerChainBalancers);

  it("is none when the chain's one resolver sets no policy: the channel's own config applies, as before", () => {
    assert.equal(chainServiceConfig([leg("orders", 100, [1, 2])], JSON.stringify(recommendedServiceConfig())), null);
  });

  it("maps Consul's policies: round_robin as grpc-js's, random, least_request and ring_hash (what maglev compiles to) as meshkit's, with Consul's ids and weights", () => {
    assert.deepEqual(legPolicy(leg("a", 100, [1], "round_robin")), { round_robin: {} });
    assert.deepEqual(legPolicy(leg("a", 100, [1], "random")), { meshkit_random: { instances: { "127.0.0.1:1": { id: "i-1", weight: 1 } } } });
    assert.deepEqual(Object.keys(legPolicy(leg("a", 100, [1], "least_outstanding"))!), ["meshkit_least_request"]);
    assert.deepEqual(legPolicy(leg("a", 100, [1], "ring_hash")), { meshkit_ring_hash: { instances: { "127.0.0.1:1": { id: "i-1", weight: 1 } }, hash: [{ header: "x-user", terminal: false }] } });
  });

  it("keeps the application's retry policies, throttling and outlier detection, with the chain's policy under the outlier detection", () => {
    const own = recommendedServiceConfig({ services: [OrderService] });
    const config = chainServiceConfig([leg("orders", 100, [1, 2], "random")], JSON.stringify(own))!;
    assert.deepEqual(config.methodConfig[0]!.retryPolicy, own.methodConfig[0]!.retryPolicy);
    assert.deepEqual(config.methodConfig[0]!.name, own.methodConfig[0]!.name);
    assert.deepEqual(config.retryThrottling, own.retryThrottling);
    const lb = config.loadBalancingConfig[0] as { outlier_detection: { child_policy: object[]; failure_percentage_ejection: object } };
    assert.deepEqual(Object.keys(lb.outlier_detection.child_policy[0]!), ["meshkit_random"]);
    assert.deepEqual(lb.outlier_detection.failure_percentage_ejection, (own.loadBalancingConfig[0] as typeof lb).outlier_detection.failure_percentage_ejection);
  });

  it("is validated as grpc-js validates a channel's: a method timeout given as text becomes { seconds, nanos }", () => {
    const own = { methodConfig: [{ name: [{ service: "a.B" }], timeout: "2s" }] };
    const config = chainServiceConfig([leg("orders", 100, [1], "random")], JSON.stringify(own))!;
    assert.deepEqual(config.methodConfig[0]!.timeout, { seconds: 2, nanos: 0 });
    assert.deepEqual(config.loadBalancingConfig, [{ meshkit_random: { instances: { "127.0.0.1:1": { id: "i-1", weight: 1 } } } }]);
  });

  it("carries a split as meshkit_weighted_target: each leg's weight, addresses and policy (the resolver's, else the channel's own)", () => {
    const config = chainServiceConfig([leg("v1", 90, [1, 2]), leg("v2", 10, [3], "random")], JSON.stringify(recommendedServiceConfig({ balancer: "meshkit_peak_ewma" })))!;
    const lb = config.loadBalancingConfig[0] as { outlier_detection: { child_policy: { meshkit_weighted_target: { targets: Record<string, { weight: number; endpoints: string[]; child_policy: object[] }> } }[] } };
    const targets = lb.outlier_detection.child_policy[0]!.meshkit_weighted_target.targets;
    assert.deepEqual(targets.v1, { weight: 90, endpoints: ["127.0.0.1:1", "127.0.0.1:2"], child_policy: [{ meshkit_peak_ewma: {} }] });
    assert.equal(targets.v2!.weight, 10);
    assert.deepEqual(Object.keys(targets.v2!.child_policy[0]!), ["meshkit_random"]);
    // Without a config of the channel's own: grpc-js's default, pick_first, in each leg.
    const bare = chainServiceConfig([leg("v1", 50, [1]), leg("v2", 50, [3])], undefined)!;
    assert.deepEqual((bare.loadBalancingConfig[0] as { meshkit_weighted_target: { targets: Record<string, { child_policy: object[] }> } }).meshkit_weighted_target.targets.v1!.child_policy, [{ pick_first: {} }]);
  });
});
