import assert from "node:assert/strict";
import { createBalancer, balancerNames, registerBalancer } from "../../src/client/balancing/registry.js";
import { roundRobinBalancer } from "../../src/client/balancing/round-robin.js";
import { randomBalancer } from "../../src/client/balancing/random.js";
import { leastOutstandingBalancer } from "../../src/client/balancing/least-outstanding.js";
import { peakEwmaBalancer } from "../../src/client/balancing/peak-ewma.js";
import "../../src/client/mesh-transport.js"; // registers the built-ins
import { countPicks, fakeEndpoint } from "../support/fake-endpoints.js";

/** A seeded generator (mulberry32), so distribution tests are repeatable. */
function seeded(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe("balancers", () => {
  it("are registered by name, and an unknown name says which exist", () => {
    assert.deepEqual(balancerNames().sort(), ["least_outstanding", "peak_ewma", "random", "ring_hash", "round_robin"]);
    assert.throws(() => createBalancer("nope"), /unknown balancer "nope"; registered: .*round_robin/);
    // Registered for this test only: the registry is global, and other suites list its names.
    const unregister = registerBalancer("first", () => ({ name: "first", picker: (endpoints) => ({ pick: () => endpoints[0] }) }));
    try {
      assert.equal(createBalancer("first").picker([fakeEndpoint("a")]).pick()?.instance.id, "a");
    } finally {
      unregister();
    }
    assert.deepEqual(balancerNames().sort(), ["least_outstanding", "peak_ewma", "random", "ring_hash", "round_robin"]);
  });

  for (const make of [roundRobinBalancer, () => randomBalancer(seeded(1)), () => leastOutstandingBalancer(seeded(2)), () => peakEwmaBalancer(seeded(3))]) {
    const name = make().name;
    describe(name, () => {
      it("returns undefined for an empty set", () => {
        assert.equal(make().picker([]).pick(), undefined);
      });

      it("passes over excluded endpoints while another remains, then gives up", () => {
        const endpoints = [fakeEndpoint("a"), fakeEndpoint("b"), fakeEndpoint("c")];
        const picker = make().picker(endpoints);
        for (let i = 0; i < 50; i++) assert.equal(picker.pick(new Set([endpoints[0]!, endpoints[2]!]))?.instance.id, "b");
        assert.equal(picker.pick(new Set(endpoints)), undefined);
      });

      it("spreads calls evenly over equal, idle endpoints (within 5%)", () => {
        const picker = make().picker([fakeEndpoint("a"), fakeEndpoint("b"), fakeEndpoint("c")]);
        const counts = countPicks(() => picker.pick(), 30_000);
        for (const id of ["a", "b", "c"]) assert.ok(Math.abs(counts.get(id)! - 10_000) < 500, `${id}: ${counts.get(id)}`);
      });

      it("follows Consul weights (3:1 within 5%)", () => {
        const picker = make().picker([fakeEndpoint("heavy", 3), fakeEndpoint("light", 1)]);
        const counts = countPicks(() => picker.pick(), 40_000);
        assert.ok(Math.abs(counts.get("heavy")! - 30_000) < 1500, `heavy: ${counts.get("heavy")}`);
      });

      it("sends nothing to an instance that left, when the set changes", () => {
        const balancer = make();
        const a = fakeEndpoint("a");
        const c = fakeEndpoint("c");
        balancer.picker([a, fakeEndpoint("b"), c]).pick();
        const after = balancer.picker([a, c]);
        const counts = countPicks(() => after.pick(), 1000);
        assert.equal(counts.get("b"), undefined);
        assert.equal((counts.get("a") ?? 0) + (counts.get("c") ?? 0), 1000);
      });
    });
  }

  it("round_robin takes endpoints strictly in turn, interleaving weights smoothly", () => {
    const picker = roundRobinBalancer().picker([fakeEndpoint("a", 5), fakeEndpoint("b"), fakeEndpoint("c")]);
    const order = Array.from({ length: 7 }, () => picker.pick()!.instance.id).join("");
    assert.equal([...order].sort().join(""), "aaaaabc");
    // Naive expansion would send five in a row to "a"; the smooth schedule never does.
    assert.doesNotMatch(order + order, /aaaaa/, `order ${order} bunches the heavy instance`);
  });

  it("least_outstanding avoids the endpoint with calls piling up", () => {
    const busy = fakeEndpoint("busy", 1, 50);
    const picker = leastOutstandingBalancer(seeded(4)).picker([busy, fakeEndpoint("b", 1, 1), fakeEndpoint("c", 1, 2)]);
    const counts = countPicks(() => picker.pick(), 3000);
    assert.equal(counts.get("busy"), undefined);
  });

  it("peak_ewma prefers the fast endpoint, and probes an unmeasured idle one", () => {
    const slow = fakeEndpoint("slow", 1, 0, 200);
    const fast = fakeEndpoint("fast", 1, 0, 2);
    // One balancer and one generator for all the picks: a new seeded generator per pick would
    // draw the same numbers, and repeat one pick a thousand times.
    const picker = peakEwmaBalancer(seeded(5)).picker([slow, fast, fakeEndpoint("slower", 1, 0, 400)]);
    const counts = countPicks(() => picker.pick(), 1000);
    // Power of two choices among three: the fast one wins every draw it is in (two in three),
    // the slow one the draws without it; the slowest never.
    assert.equal(counts.get("slower"), undefined);
    assert.ok(counts.get("fast")! > 600 && counts.get("fast")! < 730, `fast: ${counts.get("fast")}`);
    const fresh = fakeEndpoint("fresh", 1, 0, 0);
    assert.equal(peakEwmaBalancer(seeded(6)).picker([fast, fresh]).pick()?.instance.id, "fresh");
    fresh.load.outstanding = 3; // busy and still unmeasured: a bad bet
    assert.equal(peakEwmaBalancer(seeded(6)).picker([fast, fresh]).pick()?.instance.id, "fast");
  });
});
