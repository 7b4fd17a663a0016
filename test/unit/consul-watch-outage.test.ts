import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { consulResolver } from "../../src/client/resolver-consul.js";
import type { ConsulClient } from "../../src/platform/consul.js";

/**
 * A scripted stand-in for Consul's health endpoint: each query takes the next step, either an
 * answer (entries and X-Consul-Index) or a refused connection; past the script, the last step
 * repeats. The real agent's behaviour is covered by the integration tests (mesh-client.test.ts,
 * "Consul going away"); this pins the watch's rule where a real restart is a race.
 */
type Step = { index: number; ports: number[] } | "unreachable";

function scriptedConsul(steps: Step[]): ConsulClient {
  let at = 0;
  const service = async () => {
    const step = steps[Math.min(at++, steps.length - 1)]!;
    await sleep(5);
    if (step === "unreachable") throw Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:8500"), { code: "ECONNREFUSED" });
    return [{ headers: { "x-consul-index": String(step.index) } }, step.ports.map((port) => ({ Service: { ID: `echo-${port}`, Address: "127.0.0.1", Port: port } }))];
  };
  return { health: { service } } as unknown as ConsulClient;
}

const ports = (resolver: { instances: readonly { port: number }[] }) => resolver.instances.map((instance) => instance.port).sort();

describe("the Consul watch after an outage", function () {
  this.timeout(10_000);

  it("keeps the last known instances when the agent comes back empty with a higher index (a young agent restarted without data)", async () => {
    const consul = scriptedConsul([{ index: 12, ports: [1, 2] }, "unreachable", "unreachable", { index: 15, ports: [] }]);
    const resolver = consulResolver(consul, { service: "echo", minQueryIntervalMs: 10, resetGraceMs: 5000 });
    try {
      await resolver.whenResolved();
      assert.deepEqual(ports(resolver), [1, 2]);
      await sleep(1500); // the outage, its retries, and several empty answers after it
      assert.deepEqual(ports(resolver), [1, 2], "an empty answer right after the outage was believed");
    } finally {
      resolver.close();
    }
  });

  it("passes on an empty answer once the grace is over", async () => {
    const consul = scriptedConsul([{ index: 12, ports: [1, 2] }, "unreachable", { index: 15, ports: [] }]);
    const resolver = consulResolver(consul, { service: "echo", minQueryIntervalMs: 10, resetGraceMs: 300 });
    try {
      await resolver.whenResolved();
      await sleep(1500);
      assert.deepEqual(ports(resolver), []);
    } finally {
      resolver.close();
    }
  });

  it("passes on an empty answer at once when Consul was never out of reach", async () => {
    const consul = scriptedConsul([{ index: 12, ports: [1, 2] }, { index: 13, ports: [] }]);
    const resolver = consulResolver(consul, { service: "echo", minQueryIntervalMs: 10, resetGraceMs: 5000 });
    try {
      await resolver.whenResolved();
      await sleep(300);
      assert.deepEqual(ports(resolver), []);
    } finally {
      resolver.close();
    }
  });
});
