import assert from "node:assert/strict";
import { Code, ConnectError } from "@connectrpc/connect";
import { backoffDelay } from "../../src/client/retry/backoff.js";
import { createRetryBudget } from "../../src/client/retry/budget.js";
import { StreamResetError } from "../../src/client/wire/stream-reset.js";
import { attemptError, isRetryable, neverSent } from "../../src/client/retry/policy.js";
import { nextIndex } from "../../src/platform/consul-blocking.js";
import { createWeightedIndex } from "../../src/client/balancing/weighted-index.js";
import { EchoService } from "../../gen/meshkit/echo/v1/echo_pb.js";
import { Health } from "../../gen/health/v1/health_pb.js";

describe("backoffDelay (full jitter)", () => {
  it("draws in [0, min(max, base * 2^(retry-1)))", () => {
    assert.equal(backoffDelay(1, { baseMs: 25 }, () => 0.999999) < 25, true);
    assert.equal(backoffDelay(3, { baseMs: 25 }, () => 0.5), 50);
    assert.equal(backoffDelay(20, { baseMs: 25, maxMs: 1000 }, () => 0.5), 500);
    assert.equal(backoffDelay(2, {}, () => 0), 0);
  });
});

describe("createRetryBudget", () => {
  it("allows the floor when idle, then 20% of requests, and refills as the window slides", () => {
    let now = 0;
    const budget = createRetryBudget({ percentCanRetry: 0.2, minRetriesPerSecond: 1, ttlMs: 10_000 }, () => now);
    // Floor: 1/s over 10 s = 10 retries with no traffic.
    for (let i = 0; i < 10; i++) assert.equal(budget.tryWithdraw(), true, `floor retry ${i}`);
    assert.equal(budget.tryWithdraw(), false);
    for (let i = 0; i < 100; i++) budget.deposit(); // 100 requests: 20 more retries
    let granted = 0;
    while (budget.tryWithdraw()) granted++;
    assert.equal(granted, 20);
    now += 11_000; // everything has left the window
    assert.equal(budget.balance(), 10);
  });

  it("rejects a share outside [0, 1]", () => {
    assert.throws(() => createRetryBudget({ percentCanRetry: 2 }), RangeError);
  });
});

describe("retry policy", () => {
  const unavailable = new ConnectError("down", Code.Unavailable);
  it("retries an idempotent method after the request was sent, for transient codes only", () => {
    const echo = EchoService.method.echo; // NO_SIDE_EFFECTS
    assert.equal(isRetryable(unavailable, echo, true), true);
    assert.equal(isRetryable(new ConnectError("bad", Code.InvalidArgument), echo, true), false);
  });

  it("retries a method with side effects only when the request provably never left", () => {
    const watch = Health.method.watch; // no idempotency option: side effects assumed
    assert.equal(isRetryable(unavailable, watch, true), false);
    assert.equal(isRetryable(unavailable, watch, false), true);
    const refused = new ConnectError("connect failed", Code.Unavailable, undefined, undefined, Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" }));
    assert.equal(neverSent(refused, false), true);
    assert.equal(neverSent(new ConnectError("reset", Code.Unavailable), false), false);
    assert.equal(neverSent(new Error("anything"), true), true);
  });
});

describe("attemptError", () => {
  it("turns a stream reset the caller did not ask for into UNAVAILABLE, and keeps a caller's cancel", () => {
    const reset = new ConnectError("stream reset by the server: Call cancelled", Code.Canceled, undefined, undefined, new StreamResetError("Call cancelled"));
    assert.equal(attemptError(reset, "i-1", false, false).code, Code.Unavailable);
    assert.equal(attemptError(reset, "i-1", false, true).code, Code.Canceled);
    const aborted = new ConnectError("read ECONNRESET", Code.Aborted, undefined, undefined, Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" }));
    assert.equal(attemptError(aborted, "i-1", false).code, Code.Unavailable);
    assert.equal(attemptError(new ConnectError("bad", Code.InvalidArgument), "i-1", false).code, Code.InvalidArgument);
    assert.match(attemptError(new Error("x"), "i-1", true).rawMessage, /circuit breaker of instance i-1 is open/);
  });

  it("keeps a CANCELED status the server sent (no stream reset) as CANCELED", () => {
    const fromServer = new ConnectError("the server cancelled", Code.Canceled);
    const error = attemptError(fromServer, "i-1", false, false);
    assert.equal(error.code, Code.Canceled);
    assert.equal(error.rawMessage, "the server cancelled");
  });
});

describe("Consul index rules (nextIndex)", () => {
  it("moves forward, resets to 0 when the index goes backwards, and never blocks on 0", () => {
    assert.equal(nextIndex(5n, "9"), 9n);
    assert.equal(nextIndex(9n, "3"), 0n);
    assert.equal(nextIndex(0n, "0"), 1n);
    assert.equal(nextIndex(4n, undefined), 0n);
    assert.equal(nextIndex(4n, "garbage"), 0n);
  });
});

describe("createWeightedIndex (alias method)", () => {
  it("draws each index in proportion to its weight", () => {
    const index = createWeightedIndex([1, 2, 7]);
    const counts = [0, 0, 0];
    for (let i = 0; i < 100_000; i++) counts[index.draw(Math.random)]!++;
    [10_000, 20_000, 70_000].forEach((expected, i) => assert.ok(Math.abs(counts[i]! - expected) < 1500, `index ${i}: ${counts[i]}`));
  });
});
