import assert from "node:assert/strict";
import { createClient } from "@connectrpc/connect";
import { Registry } from "prom-client";
import { EchoService } from "../../gen/meshkit/echo/v1/echo_pb.js";
import { createMeshTransport, staticResolver, type MeshTransport } from "../../src/client/index.js";
import { startServerHost, type ServerHost } from "../../src/server/host.js";
import { echoRoutes } from "../../src/reference/services/echo/routes.js";
import { freePort } from "../support/free-port.js";

/** Each gauge's values by instance, as a scrape reads them. */
async function gauges(registry: Registry, name: string): Promise<Map<string, number>> {
  const metric = (await registry.getMetricsAsJSON()).find((m) => m.name === name);
  return new Map((metric?.values ?? []).map((v) => [String(v.labels.instance), v.value]));
}

describe("client metrics: each instance's ejection, attempts in flight and latency estimate, read at scrape time", function () {
  this.timeout(30_000);
  let server: ServerHost;
  let transport: MeshTransport | undefined;

  before(async () => {
    server = await startServerHost({ routes: echoRoutes("live-1") });
  });
  after(async () => {
    transport?.close();
    await server?.drain(1000);
  });

  it("reports an instance whose breaker opened as ejected, the live one with a latency estimate, and nothing once closed", async () => {
    const registry = new Registry();
    const deadPort = await freePort(); // nothing listens: every attempt there is refused
    transport = createMeshTransport({
      service: "echo-gauges",
      resolver: staticResolver([
        { id: "live", address: "127.0.0.1", port: server.port },
        { id: "dead", address: "127.0.0.1", port: deadPort },
      ]),
      balancer: "round_robin",
      breaker: { consecutiveFailures: 2, volumeThreshold: 100, resetTimeoutMs: 60_000 },
      metrics: registry,
    });
    const client = createClient(EchoService, transport);
    for (let i = 0; i < 10; i++) await client.echo({ message: "x" }, { timeoutMs: 3000 });

    const ejected = await gauges(registry, "meshkit_client_endpoint_ejected");
    assert.equal(ejected.get("dead"), 1);
    assert.equal(ejected.get("live"), 0);
    assert.equal((await gauges(registry, "meshkit_client_breaker_state")).get("dead"), 2);
    const outstanding = await gauges(registry, "meshkit_client_endpoint_outstanding");
    assert.equal(outstanding.get("live"), 0);
    const latency = await gauges(registry, "meshkit_client_endpoint_latency_seconds");
    assert.ok((latency.get("live") ?? 0) > 0 && (latency.get("live") ?? 1) < 1, `live estimate ${latency.get("live")} s`);

    // A stream counts as in flight from its opening to its end.
    const iterator = client.echoStream({ message: "x", count: 1000 }, { timeoutMs: 3000 })[Symbol.asyncIterator]();
    await iterator.next();
    assert.equal((await gauges(registry, "meshkit_client_endpoint_outstanding")).get("live"), 1);
    await iterator.return?.();
    assert.equal((await gauges(registry, "meshkit_client_endpoint_outstanding")).get("live"), 0);

    transport.close();
    transport = undefined;
    for (const name of ["meshkit_client_endpoint_ejected", "meshkit_client_endpoint_outstanding", "meshkit_client_endpoint_latency_seconds"]) {
      assert.equal((await gauges(registry, name)).size, 0, `${name} after close`);
    }
  });
});
