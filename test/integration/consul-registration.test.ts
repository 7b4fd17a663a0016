import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { createClient } from "@connectrpc/connect";
import { Registry } from "prom-client";
import { EchoService } from "../../gen/meshkit/echo/v1/echo_pb.js";
import { createMeshTransport } from "../../src/client/index.js";
import { createConsulClient, type ConsulClient } from "../../src/platform/consul.js";
import { registerInConsul } from "../../src/server/registration.js";
import { createTestPki } from "../support/certificates.js";
import { freePort } from "../support/free-port.js";
import { eventually, grpcCheckStatus } from "../support/infra.js";
import { startPrivateConsul, type PrivateConsul } from "../support/private-consul.js";
import { killProcess, startServiceProcess, type ServiceProcess } from "../support/service-process.js";

const registeredIds = async (client: ConsulClient) => Object.keys((await client.agent.service.list()) as Record<string, unknown>);

describe("Consul registration: no re-registration after deregister, and the agent's HTTPS API", function () {
  this.timeout(90_000);
  const run = randomUUID().slice(0, 8);
  const agents: PrivateConsul[] = [];
  const processes: ServiceProcess[] = [];
  after(async () => {
    await Promise.all(processes.map(killProcess));
    await Promise.all(agents.map((agent) => agent.stop()));
  });

  it("a watchdog lookup in flight when deregister() runs does not register the instance again", async () => {
    const agent = await startPrivateConsul();
    agents.push(agent);
    // The real agent behind a client whose lookups can be held once they have their answer: the
    // watchdog's lookup is then "in flight" for as long as the test wants.
    let hold: { listed: () => void; release: Promise<void> } | undefined;
    const client = agent.client;
    const held = {
      agent: {
        service: {
          register: (options: unknown) => client.agent.service.register(options as Parameters<typeof client.agent.service.register>[0]),
          deregister: (id: string) => client.agent.service.deregister(id),
          list: async () => {
            const answer = await client.agent.service.list();
            const current = hold;
            if (current) {
              hold = undefined;
              current.listed();
              await current.release;
            }
            return answer;
          },
        },
      },
    } as unknown as ConsulClient;
    const id = `watchdog-race-${run}`;
    const registration = await registerInConsul(held, { name: id, id, address: "127.0.0.1", port: 1, checkInterval: "30s" }, { reregisterIntervalMs: 100 });
    assert.ok((await registeredIds(client)).includes(id));

    // The agent forgets the instance (as after a restart without its data); the watchdog's next
    // lookup sees it missing and is held there, about to register it again.
    await client.agent.service.deregister(id);
    let release!: () => void;
    const listed = new Promise<void>((resolve) => (hold = { listed: resolve, release: new Promise((done) => (release = done)) }));
    await listed;

    const leaving = registration.deregister().then(
      () => "deregistered",
      (error: unknown) => `deregister failed: ${String(error)}`,
    );
    release();
    const outcome = await leaving;
    await sleep(1000); // ten watchdog intervals
    assert.deepEqual({ outcome, registered: (await registeredIds(client)).includes(id) }, { outcome: "deregistered", registered: false });
  });

  it("registers, discovers and deregisters over HTTPS with CONSUL_CACERT and CONSUL_CLIENT_CERT/KEY, against an agent that requires client certificates", async () => {
    const pki = await createTestPki("consul-https");
    const agentFiles = await pki.issue("consul-agent");
    const httpsPort = await freePort();
    // HTTPS on its own port, client certificates required there; the helper keeps plain HTTP on
    // another port for its own readiness check and for this test's look from outside.
    const agent = await startPrivateConsul(`
ports { https = ${httpsPort} }
tls {
  defaults {
    ca_file   = "${pki.caFile}"
    cert_file = "${agentFiles.certFile}"
    key_file  = "${agentFiles.keyFile}"
  }
  https { verify_incoming = true }
}
`);
    agents.push(agent);
    const serviceFiles = await pki.issue("echo-consul-client");
    const name = `echo-consul-https-${run}`;
    const echo = await startServiceProcess("src/reference/services/echo/main.ts", {
      SERVICE_NAME: name,
      CONSUL_CHECK_INTERVAL: "1s",
      CONSUL_HTTP_ADDR: `https://127.0.0.1:${httpsPort}`,
      CONSUL_CACERT: pki.caFile,
      CONSUL_CLIENT_CERT: serviceFiles.certFile,
      CONSUL_CLIENT_KEY: serviceFiles.keyFile,
    });
    processes.push(echo);
    assert.ok((await registeredIds(agent.client)).includes(echo.instanceId), "the instance is not registered");
    await eventually("the instance's check to pass", async () => ((await grpcCheckStatus(name, echo.instanceId, agent.client)) === "passing" ? true : undefined));

    // The mesh client's resolver, over the same HTTPS API.
    const overTls = createConsulClient({ host: "127.0.0.1", port: httpsPort, tls: { caFile: pki.caFile, ...(await pki.issue("mesh-caller")) } });
    const transport = createMeshTransport({ service: name, consul: overTls, metrics: new Registry() });
    try {
      assert.equal((await createClient(EchoService, transport).echo({ message: "via https" })).instanceId, echo.instanceId);
    } finally {
      transport.close();
    }

    // The port really is TLS with client certificates required: plain HTTP, and TLS without a
    // client certificate, are both refused.
    const plain = createConsulClient({ host: "127.0.0.1", port: httpsPort });
    await assert.rejects(plain.agent.self());
    const anonymous = createConsulClient({ host: "127.0.0.1", port: httpsPort, tls: { caFile: pki.caFile } });
    await assert.rejects(anonymous.agent.self());

    echo.signal("SIGTERM");
    assert.equal(await echo.exited, 0);
    assert.ok(!(await registeredIds(agent.client)).includes(echo.instanceId), "the instance did not deregister over HTTPS");
  });
});
