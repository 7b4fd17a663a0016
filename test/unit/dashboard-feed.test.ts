import assert from "node:assert/strict";
import { createMeshFeed } from "../../src/reference/services/dashboard/mesh-feed.js";

describe("dashboard: one collector feeds every page", () => {
  it("collects once per tick for every subscriber, with the keys watched, and stops when the last one leaves", async () => {
    const calls: string[][] = [];
    const feed = createMeshFeed(async (keys) => {
      calls.push([...keys].sort());
      return new Map([...keys].map((key) => [key, `${key}#${calls.length}`]));
    }, 20);
    const pages = [new AbortController(), new AbortController(), new AbortController()];
    const seen: string[][] = [[], [], []];
    const keys = ["", "", "orders"];
    const reading = pages.map(async (page, index) => {
      for await (const snapshot of feed.watch(keys[index]!, page.signal)) {
        seen[index]!.push(snapshot);
        if (seen[index]!.length === 3) page.abort();
      }
    });
    await Promise.all(reading);
    assert.equal(feed.subscribers, 0);
    // Three pages, two keys: one collection per tick, never one per page.
    assert.ok(calls.length >= 3 && calls.length <= 5, `${calls.length} collections`);
    assert.ok(calls.every((k) => k.length <= 2));
    assert.ok(seen[2]!.every((snapshot) => snapshot.startsWith("orders#")));
    assert.ok(seen[0]!.every((snapshot) => snapshot.startsWith("#")));
    const after = calls.length;
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.ok(calls.length <= after + 1, "kept collecting with nobody watching");
  });

  it("skips a tick whose collection throws and goes on", async () => {
    let n = 0;
    const feed = createMeshFeed(async (keys) => {
      if (++n === 1) throw new Error("Consul, Prometheus and Jaeger all down");
      return new Map([...keys].map((key) => [key, n]));
    }, 10);
    const page = new AbortController();
    for await (const snapshot of feed.watch("", page.signal)) {
      assert.equal(snapshot, 2);
      page.abort();
    }
  });
});
