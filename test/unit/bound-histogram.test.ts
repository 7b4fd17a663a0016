import assert from "node:assert/strict";
import { Histogram, Registry } from "prom-client";
import { BoundHistogram } from "../../src/common/bound-histogram.js";

/**
 * BoundHistogram must expose exactly what prom-client's own Histogram exposes for the same
 * observations: both are fed the same calls, through every API a caller has, and their
 * registries must print the same text and the same JSON.
 */
describe("BoundHistogram", () => {
  const buckets = [0.001, 0.01, 0.1, 1];
  const pair = (labelNames: string[]) => {
    const plainRegistry = new Registry();
    const boundRegistry = new Registry();
    const config = { name: "meshkit_test_seconds", help: "A test histogram.", labelNames, buckets };
    return {
      plain: new Histogram({ ...config, registers: [plainRegistry] }),
      bound: new BoundHistogram({ ...config, registers: [boundRegistry] }),
      same: async () => {
        const [plainText, boundText] = await Promise.all([plainRegistry.metrics(), boundRegistry.metrics()]);
        assert.equal(boundText, plainText);
        assert.deepEqual(await boundRegistry.getMetricsAsJSON(), await plainRegistry.getMetricsAsJSON());
        return boundText;
      },
    };
  };

  it("prints what prom-client prints, for children, labelled observes, zero, remove and reset", async () => {
    const { plain, bound, same } = pair(["service", "code"]);
    for (const histogram of [plain, bound]) {
      const ok = histogram.labels("echo", "OK");
      // On a bound, in between, and past the largest bound (only +Inf counts it).
      for (const value of [0.0005, 0.001, 0.05, 0.05, 1, 7]) ok.observe(value);
      histogram.labels({ service: "echo", code: "UNAVAILABLE" }).observe(0.2);
      histogram.observe({ service: "orders", code: "OK" }, 0.003);
      histogram.zero({ service: "users", code: "OK" });
    }
    const text = await same();
    assert.match(text, /meshkit_test_seconds_bucket\{le="0\.1",service="echo",code="OK"\} 4/);
    assert.match(text, /meshkit_test_seconds_bucket\{le="\+Inf",service="echo",code="OK"\} 6/);
    assert.match(text, /meshkit_test_seconds_count\{service="users",code="OK"\} 0/);

    for (const histogram of [plain, bound]) histogram.remove("echo", "UNAVAILABLE");
    assert.doesNotMatch(await same(), /UNAVAILABLE/);
    for (const histogram of [plain, bound]) {
      histogram.reset();
      histogram.labels("echo", "OK").observe(0.02);
    }
    assert.match(await same(), /meshkit_test_seconds_count\{service="echo",code="OK"\} 1\n/);
  });

  it("a child is one series however it is reached, and keeps counting after it was handed out", async () => {
    const { plain, bound, same } = pair(["service"]);
    const child = bound.labels("echo");
    assert.equal(bound.labels({ service: "echo" }), child);
    for (const histogram of [plain, bound]) {
      histogram.labels("echo").observe(0.5);
      histogram.observe({ service: "echo" }, 0.5);
    }
    child.observe(0.0001);
    plain.labels("echo").observe(0.0001);
    assert.match(await same(), /meshkit_test_seconds_count\{service="echo"\} 3\n/);
  });

  it("without labels, shows its one series from the start and none after a reset, as prom-client does", async () => {
    const { plain, bound, same } = pair([]);
    assert.match(await same(), /meshkit_test_seconds_count 0\n/);
    for (const histogram of [plain, bound]) histogram.observe(0.05);
    assert.match(await same(), /meshkit_test_seconds_count 1\n/);
    for (const histogram of [plain, bound]) histogram.reset();
    assert.doesNotMatch(await same(), /meshkit_test_seconds_count/);
    for (const histogram of [plain, bound]) histogram.observe(2);
    assert.match(await same(), /meshkit_test_seconds_bucket\{le="\+Inf"\} 1\n/);
  });

  it("refuses what prom-client refuses: unknown labels, a wrong number of values, a value that is not a number", () => {
    const { bound } = pair(["service"]);
    assert.throws(() => bound.labels({ region: "eu" } as never), /not included in initial labelset/);
    assert.throws(() => bound.labels("a", "b"), /Invalid number of arguments/);
    assert.throws(() => bound.labels("a").observe(Number.NaN), /not a valid number/);
  });

  it("a child's timer observes the seconds it ran", async () => {
    const { bound } = pair(["service"]);
    const end = bound.labels("echo").startTimer();
    await new Promise((resolve) => setTimeout(resolve, 20));
    // prom-client types a child's timer as returning nothing; it returns the seconds, as ours does.
    const seconds = end() as unknown as number;
    assert.ok(seconds >= 0.015 && seconds < 1, `timer measured ${seconds} s`);
    const json = await bound.get();
    assert.equal(json.values.find((value) => value.metricName === "meshkit_test_seconds_count")?.value, 1);
    assert.equal(json.values.find((value) => value.metricName === "meshkit_test_seconds_sum")?.value, seconds);
  });
});
