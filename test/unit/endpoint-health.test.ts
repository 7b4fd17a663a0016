import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError } from "@connectrpc/connect";
import { EchoService } from "../../gen/meshkit/echo/v1/echo_pb.js";
import { EndpointHealth, type BreakerState } from "../../src/client/health/endpoint-health.js";
import { createBalancer } from "../../src/client/balancing/registry.js";
import "../../src/client/balancing/round-robin.js";
import { acquireBucketRotation } from "../../src/client/health/breaker.js";
import { EndpointSet, maxEjected } from "../../src/client/endpoints/endpoint-set.js";
import { classify, defaultClassifier, type AttemptResult } from "../../src/client/call/outcome-classifier.js";

const echo = EchoService.method.echo;
const attempt = (error: ConnectError | undefined, extra: Partial<AttemptResult> = {}): AttemptResult => ({ method: echo, error, cancelled: false, deadlineWasCallers: false, ...extra });
const failure = (code: Code, metadata?: Record<string, string>) => new ConnectError("x", code, metadata);

describe("defaultClassifier", () => {
  it("says success for an answer, instance failure for an unwell instance", () => {
    assert.equal(defaultClassifier(attempt(undefined)), "success");
    for (const code of [Code.Unavailable, Code.Internal, Code.Unknown, Code.DataLoss]) assert.equal(defaultClassifier(attempt(failure(code))), "instance_failure", Code[code]);
  });

  it("holds a caller's errors against nobody", () => {
    for (const code of [Code.InvalidArgument, Code.NotFound, Code.AlreadyExists, Code.PermissionDenied, Code.Unauthenticated, Code.FailedPrecondition, Code.OutOfRange, Code.Unimplemented]) {
      assert.equal(defaultClassifier(attempt(failure(code))), "caller_fault", Code[code]);
    }
  });

  it("RESOURCE_EXHAUSTED is the caller's (too large, quota) unless the server pushes back", () => {
    assert.equal(defaultClassifier(attempt(failure(Code.ResourceExhausted))), "caller_fault");
    assert.equal(defaultClassifier(attempt(failure(Code.ResourceExhausted, { "grpc-retry-pushback-ms": "50" }))), "instance_failure");
  });

  it("DEADLINE_EXCEEDED is the instance's only when the transport's attempt timeout was the limit", () => {
    assert.equal(defaultClassifier(attempt(failure(Code.DeadlineExceeded))), "instance_failure");
    assert.equal(defaultClassifier(attempt(failure(Code.DeadlineExceeded), { deadlineWasCallers: true })), "caller_fault");
  });

  it("a cancelled attempt is 'cancelled' whatever its code", () => {
    assert.equal(defaultClassifier(attempt(failure(Code.Canceled), { cancelled: true })), "cancelled");
    assert.equal(defaultClassifier(attempt(failure(Code.Unavailable), { cancelled: true })), "cancelled");
  });

  it("per-call, per-method and transport classifiers decide in that order, the default last", () => {
    const notFoundIsInstance = ({ error }: AttemptResult) => (error?.code === Code.NotFound ? ("instance_failure" as const) : undefined);
    const everythingIsSuccess = () => "success" as const;
    assert.equal(classify(attempt(failure(Code.NotFound)), [notFoundIsInstance, everythingIsSuccess]), "instance_failure");
    assert.equal(classify(attempt(failure(Code.Internal)), [notFoundIsInstance, everythingIsSuccess]), "success");
    assert.equal(classify(attempt(failure(Code.Internal)), []), "instance_failure");
  });
});

describe("EndpointHealth", () => {
  const healths: EndpointHealth[] = [];
  const make = (options = {}) => {
    const states: BreakerState[] = [];
    const health = new EndpointHealth({ volumeThreshold: 100, consecutiveFailures: 2, resetTimeoutMs: 50, ...options }, new EventEmitter(), (state) => states.push(state));
    healths.push(health);
    return { health, states };
  };
  after(() => healths.forEach((health) => health.close()));
  const unavailable = failure(Code.Unavailable);
  const openAndWait = async (health: EndpointHealth) => {
    for (let i = 0; i < 2; i++) health.report(health.admit(), "instance_failure", unavailable);
    await sleep(0);
    assert.equal(health.state, "open");
    await sleep(80);
    assert.equal(health.state, "half_open");
  };

  it("successes count in the window: the error percentage is over all attempts", async () => {
    const { health } = make({ volumeThreshold: 10, errorThresholdPercentage: 50, consecutiveFailures: 1000 });
    for (let i = 0; i < 10; i++) health.report(health.admit(), "success", undefined);
    for (let i = 0; i < 10; i++) health.report(health.admit(), "instance_failure", unavailable);
    await sleep(0);
    assert.equal(health.state, "closed", "10 failures of 20 attempts is 50%, not over it");
    health.report(health.admit(), "instance_failure", unavailable);
    await sleep(0);
    assert.equal(health.state, "open", "11 of 21 is over 50%");
  });

  it("a success ends a run of failures", async () => {
    const { health } = make({ consecutiveFailures: 3 });
    for (let i = 0; i < 10; i++) {
      health.report(health.admit(), "instance_failure", unavailable);
      health.report(health.admit(), "instance_failure", unavailable);
      await sleep(0);
      health.report(health.admit(), "success", undefined);
    }
    await sleep(0);
    assert.equal(health.state, "closed");
  });

  it("caller faults and cancellations never open it", async () => {
    const { health } = make();
    for (let i = 0; i < 20; i++) {
      health.report(health.admit(), "caller_fault", failure(Code.InvalidArgument));
      health.report(health.admit(), "cancelled", failure(Code.Canceled));
    }
    await sleep(0);
    assert.equal(health.state, "closed");
  });

  it("half-open admits exactly one probe; the others are not admitted as probes", async () => {
    const { health } = make();
    await openAndWait(health);
    assert.equal(health.unavailable, false);
    const probe = health.admit();
    assert.equal(probe.probe, true);
    assert.equal(health.unavailable, true);
    assert.equal(health.admit().probe, false);
    health.report(probe, "success", undefined);
    await sleep(0);
    assert.equal(health.state, "closed");
  });

  it("a cancelled probe frees the slot and leaves the breaker half-open", async () => {
    const { health, states } = make();
    await openAndWait(health);
    const probe = health.admit();
    assert.equal(health.report(probe, "cancelled", failure(Code.Canceled)), true);
    await sleep(0);
    assert.equal(health.state, "half_open");
    assert.equal(health.unavailable, false);
    assert.ok(!states.includes("closed"));
    const next = health.admit();
    assert.equal(next.probe, true);
    health.report(next, "instance_failure", unavailable);
    await sleep(0);
    assert.equal(health.state, "open");
  });

  it("an attempt admitted before the breaker half-opened is not taken for the probe", async () => {
    const { health } = make();
    const early = health.admit();
    await openAndWait(health);
    health.report(early, "success", undefined);
    await sleep(0);
    assert.equal(health.state, "half_open");
  });
});

describe("maxEjected (the ejection cap)", () => {
  it("ejects at most the share asked, at least one, and never the last instance", () => {
    assert.equal(maxEjected(1, 10), 0);
    assert.equal(maxEjected(2, 10), 1);
    assert.equal(maxEjected(3, 10), 1);
    assert.equal(maxEjected(11, 10), 1);
    assert.equal(maxEjected(20, 10), 2);
    assert.equal(maxEjected(4, 100), 3);
    assert.equal(maxEjected(10, 50), 5);
  });
});

describe("EndpointSet: the ejection cap and the half-open probe at pick time", () => {
  const sets: EndpointSet[] = [];
  const rotation = acquireBucketRotation(10_000);
  after(() => {
    sets.forEach((set) => set.close());
    rotation.release();
  });
  const makeSet = (count: number, maxEjectionPercent = 10) => {
    const set = new EndpointSet({
      service: "unit",
      balancer: createBalancer("round_robin"),
      maxEjectionPercent,
      slowStart: undefined,
      metrics: undefined,
      // No call is made: endpoints connect lazily, so these ports are never dialled.
      endpoint: { tls: undefined, breaker: { consecutiveFailures: 1, volumeThreshold: 100, resetTimeoutMs: 60_000 }, rotation: rotation.rotation, interceptors: [], readMaxBytes: 1024, writeMaxBytes: 1024 },
      onInstances: () => undefined,
      onBreaker: () => undefined,
    });
    sets.push(set);
    set.apply(Array.from({ length: count }, (_, i) => ({ id: `i${i}`, address: "127.0.0.1", port: 1 + i, weight: 1, tags: [], meta: {} })));
    return set;
  };
  const eject = async (set: EndpointSet, index: number) => {
    const endpoint = set.list[index]!;
    set.finished({ endpoint, admission: endpoint.health.admit() }, "instance_failure", failure(Code.Unavailable));
    await sleep(0);
    assert.equal(endpoint.health.state, "open");
  };
  const picked = (set: EndpointSet, n = 200) => {
    const ids = new Set<string>();
    for (let i = 0; i < n; i++) ids.add(set.pick(undefined)!.endpoint.instance.id);
    return ids;
  };

  it("of 11 instances with 3 breakers open, only the first opened (10%, at least one) leaves the picks", async () => {
    const set = makeSet(11);
    for (const index of [4, 7, 9]) await eject(set, index);
    const ids = picked(set);
    assert.equal(ids.size, 10);
    assert.ok(!ids.has("i4"));
    assert.ok(ids.has("i7") && ids.has("i9"));
  });

  it("never ejects the last instance, and a higher cap ejects more", async () => {
    const single = makeSet(1);
    await eject(single, 0);
    assert.deepEqual([...picked(single, 10)], ["i0"]);
    const generous = makeSet(4, 50);
    for (const index of [0, 1, 2]) await eject(generous, index);
    assert.deepEqual([...picked(generous)].sort(), ["i2", "i3"]);
  });
});
