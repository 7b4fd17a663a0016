import assert from "node:assert/strict";
import { hashString, ringHashBalancer } from "../../src/client/balancing/ring-hash.js";
import { countPicks, fakeEndpoint } from "../support/fake-endpoints.js";

const keys = Array.from({ length: 10_000 }, (_, i) => `user-${i}`);

/** Which endpoint id each key lands on. */
function owners(ids: string[], weights: Record<string, number> = {}): Map<string, string> {
  const picker = ringHashBalancer().picker(ids.map((id) => fakeEndpoint(id, weights[id] ?? 1)));
  return new Map(keys.map((key) => [key, picker.pick(undefined, key)!.instance.id]));
}

describe("ring_hash balancer (consistent hashing)", () => {
  it("sends one key to one endpoint, every time and from every client (a ring built anew agrees)", () => {
    const ids = ["a", "b", "c"];
    const first = owners(ids);
    // Another client, whose endpoints arrive in another order, builds the same ring.
    const second = owners([...ids].reverse());
    assert.deepEqual([...first.entries()], [...second.entries()]);
    const picker = ringHashBalancer().picker(ids.map((id) => fakeEndpoint(id)));
    for (let i = 0; i < 100; i++) assert.equal(picker.pick(undefined, "user-42")?.instance.id, first.get("user-42"));
  });

  it("spreads keys over equal endpoints (each within 20% of its share) and follows weights", () => {
    const counts = new Map<string, number>();
    for (const owner of owners(["a", "b", "c", "d"]).values()) counts.set(owner, (counts.get(owner) ?? 0) + 1);
    for (const id of ["a", "b", "c", "d"]) assert.ok(Math.abs(counts.get(id)! - 2500) < 500, `${id}: ${counts.get(id)}`);
    const weighted = new Map<string, number>();
    for (const owner of owners(["heavy", "light"], { heavy: 3 }).values()) weighted.set(owner, (weighted.get(owner) ?? 0) + 1);
    assert.ok(Math.abs(weighted.get("heavy")! - 7500) < 750, `heavy: ${weighted.get("heavy")}`);
  });

  it("moves only about 1/N of the keys when an instance joins, and only the leaver's when one leaves", () => {
    const three = owners(["a", "b", "c"]);
    const four = owners(["a", "b", "c", "d"]);
    let moved = 0;
    for (const key of keys) {
      if (three.get(key) === four.get(key)) continue;
      moved++;
      assert.equal(four.get(key), "d", "a key that moved went to the new instance");
    }
    assert.ok(moved > 1500 && moved < 3500, `${moved} of 10,000 moved (1/4 is 2,500)`);
    const two = owners(["a", "c"]);
    for (const key of keys) if (three.get(key) !== "b") assert.equal(two.get(key), three.get(key), "only the leaver's keys move");
  });

  it("a retry walks on along the ring, passing over endpoints tried; without a key it picks at random", () => {
    const endpoints = ["a", "b", "c"].map((id) => fakeEndpoint(id));
    const picker = ringHashBalancer().picker(endpoints);
    const first = picker.pick(undefined, "k")!;
    const second = picker.pick(new Set([first]), "k")!;
    assert.notEqual(second, first);
    const third = picker.pick(new Set([first, second]), "k")!;
    assert.equal(new Set([first, second, third]).size, 3);
    assert.equal(picker.pick(new Set(endpoints), "k"), undefined);
    const counts = countPicks(() => picker.pick(), 9000);
    for (const id of ["a", "b", "c"]) assert.ok(counts.get(id)! > 2500, `${id}: ${counts.get(id)}`);
    assert.equal(ringHashBalancer().picker([]).pick(undefined, "k"), undefined);
  });

  it("hashes strings stably", () => {
    assert.equal(hashString("user-1"), hashString("user-1"));
    assert.notEqual(hashString("user-1"), hashString("user-2"));
  });
});
