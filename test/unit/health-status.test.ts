import assert from "node:assert/strict";
import { createHealthStatus, ServingStatus } from "../../src/server/health.js";

describe("createHealthStatus", () => {
  it("starts the server and every named service as SERVING and knows no others", () => {
    const health = createHealthStatus(["a.v1.A"]);
    assert.equal(health.get(""), ServingStatus.SERVING);
    assert.equal(health.get("a.v1.A"), ServingStatus.SERVING);
    assert.equal(health.get("b.v1.B"), undefined);
  });

  it("notifies subscribers of changes only, until they unsubscribe", () => {
    const health = createHealthStatus(["a.v1.A"]);
    const seen: [string, ServingStatus][] = [];
    const unsubscribe = health.subscribe((service, status) => seen.push([service, status]));
    health.set("a.v1.A", ServingStatus.SERVING); // unchanged: no event
    health.set("a.v1.A", ServingStatus.NOT_SERVING);
    health.setAll(ServingStatus.NOT_SERVING); // only "" changes
    unsubscribe();
    health.set("", ServingStatus.SERVING);
    assert.deepEqual(seen, [
      ["a.v1.A", ServingStatus.NOT_SERVING],
      ["", ServingStatus.NOT_SERVING],
    ]);
  });
});
