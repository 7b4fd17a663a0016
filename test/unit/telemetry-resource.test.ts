import assert from "node:assert/strict";
import { runTelemetryProbe, telemetryModuleUrl } from "../support/telemetry-probe.js";

/**
 * Runs in a child process (the OpenTelemetry SDK is process-global): `startTelemetry` for the
 * instance "orders-7" of "orders", one span, and the attributes of that span's resource (what
 * the exporter sends with it) printed as JSON once the detectors have answered.
 */
const probe = `
const { startTelemetry } = await import(${JSON.stringify(telemetryModuleUrl)});
const { trace } = await import("@opentelemetry/api");
startTelemetry({ serviceName: "orders", serviceVersion: "1.2.3", instanceId: "orders-7", otlpEndpoint: "http://127.0.0.1:9" });
const span = trace.getTracer("probe").startSpan("probe");
await span.resource.waitForAsyncAttributes?.();
console.log(JSON.stringify(span.resource.attributes));
process.exit(0);
`;

function resourceAttributes(env: Record<string, string> = {}): Promise<Record<string, unknown>> {
  return runTelemetryProbe<Record<string, unknown>>(probe, env);
}

describe("startTelemetry's resource: the service's identity over what the detectors find", function () {
  this.timeout(30_000);

  it("names the service, its version and its Consul instance id, with the host and the process id, and no command line", async () => {
    const attributes = await resourceAttributes();
    assert.equal(attributes["service.name"], "orders");
    assert.equal(attributes["service.version"], "1.2.3");
    assert.equal(attributes["service.instance.id"], "orders-7");
    assert.equal(typeof attributes["process.pid"], "number");
    assert.equal(typeof attributes["host.name"], "string");
    assert.equal(attributes["telemetry.sdk.language"], "nodejs");
    assert.equal(attributes["process.command_args"], undefined);
  });

  it("adds OTEL_RESOURCE_ATTRIBUTES, but keeps the instance id its own", async () => {
    const attributes = await resourceAttributes({ OTEL_RESOURCE_ATTRIBUTES: "deployment.environment.name=staging,service.instance.id=elsewhere" });
    assert.equal(attributes["deployment.environment.name"], "staging");
    assert.equal(attributes["service.instance.id"], "orders-7");
  });

  it("detects everything OpenTelemetry can with OTEL_NODE_RESOURCE_DETECTORS=all, still under the service's identity", async () => {
    const attributes = await resourceAttributes({ OTEL_NODE_RESOURCE_DETECTORS: "all" });
    assert.ok(Array.isArray(attributes["process.command_args"]), JSON.stringify(attributes));
    assert.equal(attributes["service.instance.id"], "orders-7");
  });

  it("detects nothing with OTEL_NODE_RESOURCE_DETECTORS=none", async () => {
    const attributes = await resourceAttributes({ OTEL_NODE_RESOURCE_DETECTORS: "none" });
    assert.equal(attributes["host.name"], undefined);
    assert.equal(attributes["service.instance.id"], "orders-7");
  });
});
