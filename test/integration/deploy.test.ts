import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readdir } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { consulAddress } from "../support/infra.js";
import { startPrivateConsul } from "../support/private-consul.js";
import { compileChain } from "../../src/client/routing/compile.js";
import type { DiscoveryChainResponse } from "../../src/client/routing/chain.js";
import { projectRoot } from "../support/service-process.js";

const run = promisify(execFile);
const deploy = (...parts: string[]) => path.join(projectRoot, "deploy", ...parts);
const consulEnv = { ...process.env, CONSUL_HTTP_ADDR: `${consulAddress.host}:${consulAddress.port}` };

describe("deploy/: checked by the real consul and promtool binaries", function () {
  this.timeout(60_000);

  for (const config of [["agent-dev.hcl"], ["server.hcl"], ["client.hcl", "services"]]) {
    it(`consul validate accepts ${config.join(" + ")}`, async () => {
      const { stdout } = await run("consul", ["validate", ...config.map((file) => deploy("consul", file))]);
      assert.match(stdout, /Configuration is valid!/);
    });
  }

  it("writes every config entry into a running agent and reads it back as written", async () => {
    const files = (await readdir(deploy("consul", "config-entries"))).filter((file) => file.endsWith(".hcl"));
    assert.ok(files.length >= 5);
    for (const file of files) {
      await run("consul", ["config", "write", deploy("consul", "config-entries", file)], { env: consulEnv });
    }
    const read = async (kind: string, name: string) => JSON.parse((await run("consul", ["config", "read", "-kind", kind, "-name", name], { env: consulEnv })).stdout);
    assert.equal((await read("service-defaults", "orders")).Protocol, "grpc");
    assert.deepEqual((await read("service-resolver", "orders")).Failover["*"].Datacenters, ["dc2"]);
    const intentions = await read("service-intentions", "orders");
    assert.deepEqual(intentions.Sources.map((s: { Name: string; Action: string }) => `${s.Name}:${s.Action}`), ["status:allow", "traffic:allow", "developer:allow", "*:deny"]);
  });

  it("the canary example (deploy/consul/canary) compiles, in an agent of its own, into the chain the README describes, which the mesh client applies whole", async () => {
    // A private agent: these entries would change how every client of the shared agent calls orders.
    const agent = await startPrivateConsul();
    try {
      const env = { ...process.env, CONSUL_HTTP_ADDR: agent.address };
      await run("consul", ["config", "write", deploy("consul", "config-entries", "service-defaults-orders.hcl")], { env });
      for (const file of ["service-resolver-orders.hcl", "service-splitter-orders.hcl", "service-router-orders.hcl"]) {
        await run("consul", ["config", "write", deploy("consul", "canary", file)], { env });
      }
      const { Chain: chain } = (await (await fetch(`http://${agent.address}/v1/discovery-chain/orders`)).json()) as DiscoveryChainResponse;
      const splitter = chain.Nodes["splitter:orders.default.default"]!;
      assert.deepEqual(splitter.Splits!.map((split) => [split.Weight, split.NextNode]), [[90, "resolver:v1.orders.default.default.dc1"], [10, "resolver:v2.orders.default.default.dc1"]]);
      assert.equal(chain.Targets["v2.orders.default.default.dc1"]!.Subset?.Filter, 'Service.Meta.version == "0.2.0"');
      const compiled = compileChain(chain, "orders");
      assert.ok(!("error" in compiled));
      assert.deepEqual(compiled.problems, []);
      assert.deepEqual(compiled.routes!.map((route) => route.label), ["route[0]", "route[1]", "default"]);
      assert.deepEqual(compiled.groups.get("resolver:v2.orders.default.default.dc1")!.failover, ["v2.orders.default.default.dc2"]);
    } finally {
      await agent.stop();
    }
  });

  it("promtool accepts the Prometheus config (Consul service discovery) and the alert rules", async () => {
    const { stdout } = await run("promtool", ["check", "config", deploy("prometheus", "prometheus.yml")]);
    assert.match(stdout, /SUCCESS/);
  });

  it("promtool's unit tests fire each alert on an induced failure and keep it quiet when healthy", async () => {
    const { stdout, stderr } = await run("promtool", ["test", "rules", deploy("prometheus", "alerts.test.yml")]);
    assert.match(stdout + stderr, /SUCCESS/);
  });
});
