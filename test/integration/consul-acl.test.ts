import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { Registry } from "prom-client";
import { EchoService } from "../../gen/meshkit/echo/v1/echo_pb.js";
import { createMeshTransport, type MeshTransport } from "../../src/client/index.js";
import { createConsulClient } from "../../src/platform/consul.js";
import { eventually } from "../support/infra.js";
import { startPrivateConsul, type PrivateConsul } from "../support/private-consul.js";
import { killProcess, startServiceProcess, type ServiceProcess } from "../support/service-process.js";

describe("Consul with ACLs: registration and watch work with a token and fail clearly without one", function () {
  this.timeout(90_000);
  const token = randomUUID();
  const service = `echo-acl-${token.slice(0, 8)}`;
  let agent: PrivateConsul;
  const processes: ServiceProcess[] = [];
  const transports: MeshTransport[] = [];

  before(async () => {
    agent = await startPrivateConsul(`
acl {
  enabled        = true
  default_policy = "deny"
  tokens {
    initial_management = "${token}"
    agent              = "${token}"
  }
}
`);
  });
  after(async () => {
    for (const transport of transports) transport.close();
    await Promise.all(processes.map(killProcess));
    await agent?.stop();
  });

  it("registers with CONSUL_HTTP_TOKEN, and Consul's check passes", async () => {
    const echo = await startServiceProcess("src/reference/services/echo/main.ts", { SERVICE_NAME: service, CONSUL_HTTP_ADDR: agent.address, CONSUL_HTTP_TOKEN: token, CONSUL_CHECK_INTERVAL: "1s" });
    processes.push(echo);
    await eventually("the instance to pass", async () => {
      const passing = (await agent.client.health.service({ service, passing: true })) as unknown[];
      return passing.length === 1 ? true : undefined;
    });
  });

  it("refuses to start without a token, saying why", async () => {
    const refused = startServiceProcess("src/reference/services/echo/main.ts", { SERVICE_NAME: service, CONSUL_HTTP_ADDR: agent.address, CONSUL_HTTP_TOKEN: "" }, { readyTimeoutMs: 20_000 });
    await assert.rejects(refused, (error: Error) => /exited \(1\)/.test(error.message) && /set CONSUL_HTTP_TOKEN to a token allowed to register/.test(error.message));
  });

  it("resolves through the watch with a token; without one, calls fail with UNAVAILABLE naming the ACLs", async () => {
    const withToken = createMeshTransport({ service, consul: agent.client, metrics: new Registry() });
    const anonymous = createMeshTransport({ service, consul: createConsulClient({ host: "127.0.0.1", port: agent.httpPort }, ""), metrics: new Registry() });
    transports.push(withToken, anonymous);
    assert.equal((await createClient(EchoService, withToken).echo({ message: "hi" })).instanceId, processes[0]!.instanceId);
    const error = await createClient(EchoService, anonymous)
      .echo({ message: "hi" })
      .then(() => undefined, (e: unknown) => ConnectError.from(e));
    assert.equal(error?.code, Code.Unavailable);
    assert.match(error!.rawMessage, /ACLs deny by default, so they may hide instances .* CONSUL_HTTP_TOKEN/);
  });
});
