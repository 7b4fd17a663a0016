import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import path from "node:path";
import { pathToFileURL } from "node:url";

const projectRoot = path.resolve(import.meta.dirname, "../..");

/**
 * Runs in a child process (the OpenTelemetry SDK is process-global): an OTLP/HTTP endpoint that
 * records the paths it is sent, the SDK's metrics exporter pointed at it with a short interval,
 * `startTelemetry`, a metric recorded through the OpenTelemetry API, and a wait of several
 * intervals. Prints the paths as JSON.
 */
const probe = `
import http from "node:http";
const paths = [];
const server = http.createServer((request, response) => { paths.push(request.url); request.resume(); request.on("end", () => response.end()); });
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const endpoint = "http://127.0.0.1:" + server.address().port;
process.env.OTEL_EXPORTER_OTLP_METRICS_ENDPOINT = endpoint + "/v1/metrics";
process.env.OTEL_METRIC_EXPORT_INTERVAL = "200";
const { startTelemetry } = await import(${JSON.stringify(pathToFileURL(path.join(projectRoot, "src/platform/telemetry.ts")).href)});
const { metrics } = await import("@opentelemetry/api");
const telemetry = startTelemetry({ serviceName: "traces-only-probe", otlpEndpoint: endpoint });
metrics.getMeter("probe").createCounter("probe_total").add(1);
await new Promise((resolve) => setTimeout(resolve, 1000));
await telemetry.shutdown();
console.log(JSON.stringify(paths));
process.exit(0);
`;

describe("startTelemetry exports traces only", function () {
  this.timeout(30_000);

  it("starts no OTLP metrics reader (metrics are prom-client's, on /metrics)", async () => {
    const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", probe], { cwd: projectRoot, stdio: ["ignore", "pipe", "inherit"] });
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
    const [code] = (await once(child, "exit")) as [number];
    assert.equal(code, 0);
    const paths = JSON.parse(output.trim().split("\n").pop()!) as string[];
    assert.deepEqual(paths, [], `the SDK sent ${paths.join(", ")}`);
  });
});
