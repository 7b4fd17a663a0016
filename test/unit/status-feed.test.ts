import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { create } from "@bufbuild/protobuf";
import { context, ROOT_CONTEXT, SpanStatusCode, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from "@opentelemetry/sdk-trace";
import { SystemStatusSchema, type SystemStatus } from "../../gen/meshkit/status/v1/status_pb.js";
import { inheritedDeadline, runWithDeadline } from "../../src/common/deadline.js";
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

describe("status feed: each collector tick is a root span of its own, linked to the watch that started the collector", () => {
  const exporter = new InMemorySpanExporter();
  const tracer = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] }).getTracer("status-feed-test");
  let ownContextManager = false;
  before(() => {
    // The global context manager carries the active span across awaits; register one only when
    // no other suite of this mocha process has, and remove only that one.
    ownContextManager = context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  });
  after(() => {
    if (ownContextManager) context.disable();
  });
  beforeEach(() => exporter.reset());

  /** A collect that records, each time, the span it runs in and the deadline it inherits, and makes one child span. */
  function observingCollect(options: { failFirst?: boolean } = {}) {
    const seen: { spanId: string | undefined; deadline: number | undefined }[] = [];
    const collect = async (): Promise<SystemStatus> => {
      seen.push({ spanId: trace.getActiveSpan()?.spanContext().spanId, deadline: inheritedDeadline() });
      tracer.startSpan("consul.health.service").end();
      if (options.failFirst && seen.length === 1) throw new Error("Consul unreachable");
      return create(SystemStatusSchema, {});
    };
    return { seen, collect };
  }

  /** Resolves once `done()` holds (checked every 5 ms), so that a loaded machine's slow ticks do not fail the test. */
  async function until(done: () => boolean): Promise<void> {
    while (!done()) await sleep(5);
  }

  it("starts a status.collect root span per tick, linked to the subscriber's span, with the tick's work under it and without the subscriber's deadline", async () => {
    const { seen, collect } = observingCollect({ failFirst: true });
    const feed = createStatusFeed(collect, 20, { tracer });
    const subscriber = tracer.startSpan("meshkit.status.v1.StatusService/WatchSystemStatus");
    const watchers = context.with(trace.setSpan(context.active(), subscriber), () =>
      runWithDeadline(performance.now() + 60_000, () => startWatchers(feed, 1)),
    );
    await until(() => seen.length >= 3);
    await watchers.stop();
    await sleep(30); // a tick under way when the watcher left ends its span
    subscriber.end();

    const spans = exporter.getFinishedSpans();
    const ticks = spans.filter((span) => span.name === "status.collect");
    assert.ok(ticks.length >= 3, `${ticks.length} status.collect spans`);
    assert.equal(ticks.length, seen.length, "one span per tick");
    const subscriberContext = subscriber.spanContext();
    for (const tick of ticks) {
      assert.equal(tick.parentSpanContext, undefined, "a root span");
      assert.notEqual(tick.spanContext().traceId, subscriberContext.traceId, "a trace of its own");
      assert.deepEqual(
        tick.links.map((link) => [link.context.traceId, link.context.spanId]),
        [[subscriberContext.traceId, subscriberContext.spanId]],
      );
      assert.equal(tick.attributes["meshkit.status.subscribers"], 1);
    }
    assert.equal(new Set(ticks.map((tick) => tick.spanContext().traceId)).size, ticks.length, "each tick its own trace");
    // The tick's work runs in the tick's span: what collect traces is its child.
    assert.deepEqual(seen.map((entry) => entry.spanId), ticks.map((tick) => tick.spanContext().spanId));
    const children = spans.filter((span) => span.name === "consul.health.service");
    assert.deepEqual(children.map((child) => child.parentSpanContext?.spanId), ticks.map((tick) => tick.spanContext().spanId));
    // The subscriber's deadline bounds its own call, not the collector that outlives it.
    assert.deepEqual(seen.map((entry) => entry.deadline), seen.map(() => undefined));
    // A collect that throws marks its tick's span as failed; the next tick goes on.
    assert.equal(ticks[0]!.status.code, SpanStatusCode.ERROR);
    assert.equal(ticks[0]!.status.message, "Consul unreachable");
    assert.equal(ticks[1]!.status.code, SpanStatusCode.UNSET);
  });

  it("links nothing when the watch that started the collector was not traced", async () => {
    const { seen, collect } = observingCollect();
    const feed = createStatusFeed(collect, 20, { tracer });
    const watchers = context.with(ROOT_CONTEXT, () => startWatchers(feed, 1));
    await until(() => seen.length >= 2);
    await watchers.stop();
    await sleep(30);
    const ticks = exporter.getFinishedSpans().filter((span) => span.name === "status.collect");
    assert.ok(ticks.length >= 1);
    for (const tick of ticks) {
      assert.equal(tick.parentSpanContext, undefined);
      assert.deepEqual(tick.links, []);
    }
  });
});
