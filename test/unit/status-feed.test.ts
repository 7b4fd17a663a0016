import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { create } from "@bufbuild/protobuf";
import { SystemStatusSchema, type SystemStatus } from "../../gen/meshkit/status/v1/status_pb.js";
import { createStatusFeed } from "../../src/reference/services/status/status-feed.js";

/** A collect that counts its calls and reports `totalOrders` as set by the test. */
function countingCollect() {
  const state = { calls: 0, orders: 0n };
  const collect = async (): Promise<SystemStatus> => {
    state.calls++;
    return create(SystemStatusSchema, { totalOrders: state.orders });
  };
  return { state, collect };
}

/** Starts `n` watchers, each recording the totalOrders it is sent. */
function startWatchers(feed: ReturnType<typeof createStatusFeed>, n: number) {
  const abort = new AbortController();
  const received = Array.from({ length: n }, () => [] as bigint[]);
  const done = Promise.all(
    received.map(async (seen) => {
      for await (const status of feed.watch(abort.signal)) seen.push(status.totalOrders);
    }),
  );
  return { received, stop: async () => (abort.abort(), await done) };
}

describe("status feed: one collector for every WatchSystemStatus subscriber (issue 13, case 8)", () => {
  it("collects as often for 1,000 watchers as for one, and sends each of them every change", async () => {
    const one = countingCollect();
    const single = startWatchers(createStatusFeed(one.collect, 20), 1);
    const many = countingCollect();
    const feed = createStatusFeed(many.collect, 20);
    const thousand = startWatchers(feed, 1000);
    await sleep(100);
    one.state.orders = many.state.orders = 7n;
    await sleep(100);
    await single.stop();
    await thousand.stop();
    // About ten ticks each in 200 ms; the thousand watchers share theirs.
    assert.ok(Math.abs(many.state.calls - one.state.calls) <= 2, `1 watcher: ${one.state.calls} collects, 1,000 watchers: ${many.state.calls}`);
    assert.ok(many.state.calls >= 5 && many.state.calls <= 12, `${many.state.calls} collects`);
    for (const seen of thousand.received) assert.deepEqual(seen, [0n, 7n]);
    assert.deepEqual(single.received[0], [0n, 7n]);
    assert.equal(feed.subscribers, 0);
  });

  it("stops collecting when the last watcher leaves, and starts afresh for the next", async () => {
    const { state, collect } = countingCollect();
    const feed = createStatusFeed(collect, 20);
    const first = startWatchers(feed, 3);
    await sleep(60);
    await first.stop();
    await sleep(40); // the loop notices at its next tick
    const afterLeaving = state.calls;
    await sleep(100);
    assert.equal(state.calls, afterLeaving, "collected with nobody watching");
    state.orders = 3n;
    const second = startWatchers(feed, 1);
    await sleep(60);
    await second.stop();
    assert.deepEqual(second.received[0], [3n]);
  });
});
