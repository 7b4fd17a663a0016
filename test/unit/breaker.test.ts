import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { Code, ConnectError } from "@connectrpc/connect";
import { createBreaker } from "../../src/client/health/breaker.js";

const fail = (code: Code) => () => Promise.reject(new ConnectError("x", code));
const succeed = () => Promise.resolve("ok");

describe("createBreaker", () => {
  const breakers: ReturnType<typeof createBreaker>[] = [];
  const make = (options = {}) => {
    const breaker = createBreaker({ volumeThreshold: 1000, ...options }, new EventEmitter());
    breakers.push(breaker);
    return breaker;
  };
  after(() => breakers.forEach((breaker) => breaker.shutdown()));

  it("opens after a run of instance failures even when the window's percentage is low", async () => {
    const breaker = make({ consecutiveFailures: 5 });
    for (let i = 0; i < 50; i++) await breaker.fire(succeed);
    for (let i = 0; i < 4; i++) await breaker.fire(fail(Code.Unavailable)).catch(() => undefined);
    assert.equal(breaker.opened, false);
    await breaker.fire(fail(Code.DeadlineExceeded)).catch(() => undefined);
    assert.equal(breaker.opened, true);
  });

  it("a success ends the run", async () => {
    const breaker = make({ consecutiveFailures: 3 });
    for (let i = 0; i < 10; i++) {
      await breaker.fire(fail(Code.Unavailable)).catch(() => undefined);
      await breaker.fire(fail(Code.Unavailable)).catch(() => undefined);
      await breaker.fire(succeed);
    }
    assert.equal(breaker.opened, false);
  });
});
