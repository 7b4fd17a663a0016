import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readdir } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { consulAddress } from "../support/infra.js";
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

  it("promtool accepts the Prometheus config (Consul service discovery) and the alert rules", async () => {
    const { stdout } = await run("promtool", ["check", "config", deploy("prometheus", "prometheus.yml")]);
    assert.match(stdout, /SUCCESS/);
  });

  it("promtool's unit tests fire each alert on an induced failure and keep it quiet when healthy", async () => {
    const { stdout, stderr } = await run("promtool", ["test", "rules", deploy("prometheus", "alerts.test.yml")]);
    assert.match(stdout + stderr, /SUCCESS/);
  });
});
