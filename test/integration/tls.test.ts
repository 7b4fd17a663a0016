import assert from "node:assert/strict";
import { copyFile, readFile } from "node:fs/promises";
import path from "node:path";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { Registry } from "prom-client";
import { EchoService } from "../../gen/meshkit/echo/v1/echo_pb.js";
import { createMeshTransport, staticResolver, type MeshTransport, type MeshTransportOptions } from "../../src/client/index.js";
import { startServerHost, type ServerHost } from "../../src/server/host.js";
import { echoRoutes } from "../../src/reference/services/echo/routes.js";
import { createTestPki, type TestPki } from "../support/certificates.js";
import { consul, eventually, grpcCheckStatus } from "../support/infra.js";
import { startPrivateConsul } from "../support/private-consul.js";
import { killProcess, projectRoot, startServiceProcess, type ServiceProcess } from "../support/service-process.js";

describe("TLS and mutual TLS between the mesh client and the server host", function () {
  this.timeout(60_000);
  let pki: TestPki;
  let server: ServerHost;
  let serverFiles: { certFile: string; keyFile: string };
  const transports: MeshTransport[] = [];

  const call = (tls: MeshTransportOptions["tls"]) => {
    const transport = createMeshTransport({ service: "echo-tls", resolver: staticResolver([{ address: "127.0.0.1", port: server.port }]), metrics: new Registry(), retry: false, tls });
    transports.push(transport);
    return createClient(EchoService, transport)
      .echo({ message: "over tls" }, { timeoutMs: 3000 })
      .then((reply) => reply.instanceId, (error: unknown) => ConnectError.from(error));
  };

  before(async () => {
    pki = await createTestPki("a");
    serverFiles = await pki.issue("server");
    server = await startServerHost({ routes: echoRoutes("tls-1"), tls: { ...serverFiles, caFile: pki.caFile, requireClientCert: true } });
  });
  after(async () => {
    for (const transport of transports) transport.close();
    await server?.drain(1000);
  });

  it("completes a mutual-TLS handshake with a client certificate signed by the trusted CA", async () => {
    const client = await pki.issue("client");
    assert.equal(await call({ caFile: pki.caFile, ...client }), "tls-1");
  });

  it("refuses a client without a certificate, and one whose certificate another CA signed", async () => {
    const anonymous = await call({ caFile: pki.caFile });
    assert.ok(anonymous instanceof ConnectError && anonymous.code === Code.Unavailable, String(anonymous));
    const stranger = await createTestPki("stranger");
    const strangerClient = await stranger.issue("client");
    const refused = await call({ caFile: pki.caFile, ...strangerClient });
    assert.ok(refused instanceof ConnectError && refused.code === Code.Unavailable, String(refused));
  });

  it("runs a service process over TLS, checked by Consul over TLS, called through Consul discovery", async () => {
    const files = await pki.issue("echo-process");
    const name = `echo-tls-${Date.now()}`;
    const echo = await startServiceProcess("src/reference/services/echo/main.ts", {
      SERVICE_NAME: name,
      CONSUL_CHECK_INTERVAL: "1s",
      TLS_CERT_FILE: files.certFile,
      TLS_KEY_FILE: files.keyFile,
      CONSUL_CHECK_TLS_SKIP_VERIFY: "true",
    });
    try {
      await eventually("Consul's TLS gRPC check to pass", async () => ((await grpcCheckStatus(name, echo.instanceId)) === "passing" ? true : undefined));
      const transport = createMeshTransport({ service: name, consul, metrics: new Registry(), tls: { caFile: pki.caFile } });
      transports.push(transport);
      assert.equal((await createClient(EchoService, transport).echo({ message: "hi" })).instanceId, echo.instanceId);
    } finally {
      await killProcess(echo);
    }
  });

  it("passes Consul's check against an instance that requires client certificates, with deploy/consul/checks-mtls.hcl", async () => {
    // The deployment overlay as shipped, pointed at this test's PKI.
    const agentFiles = await pki.issue("consul-agent");
    const overlay = (await readFile(path.join(projectRoot, "deploy/consul/checks-mtls.hcl"), "utf8"))
      .replace("/etc/consul.d/tls/ca.pem", pki.caFile)
      .replace("/etc/consul.d/tls/agent.pem", agentFiles.certFile)
      .replace("/etc/consul.d/tls/agent-key.pem", agentFiles.keyFile);
    assert.doesNotMatch(overlay, /\/etc\/consul\.d/, "the overlay names files this test did not replace");
    const agentWithTls = await startPrivateConsul(overlay);
    const files = await pki.issue("echo-mtls");
    const name = `echo-mtls-${Date.now()}`;
    const env = { SERVICE_NAME: name, CONSUL_CHECK_INTERVAL: "1s", TLS_CERT_FILE: files.certFile, TLS_KEY_FILE: files.keyFile, TLS_CA_FILE: pki.caFile, TLS_REQUIRE_CLIENT_CERT: "true" };
    const started: ServiceProcess[] = [];
    try {
      // The same instance configuration twice: checked by the agent with TLS for checks, and by
      // the shared agent, which has no certificate to present (told to skip verifying the
      // instance's certificate, so the missing client certificate is the only thing wrong).
      const checked = await startServiceProcess("src/reference/services/echo/main.ts", { ...env, CONSUL_HTTP_ADDR: agentWithTls.address });
      started.push(checked);
      const unchecked = await startServiceProcess("src/reference/services/echo/main.ts", { ...env, CONSUL_CHECK_TLS_SKIP_VERIFY: "true" });
      started.push(unchecked);
      await eventually("the check with the agent's certificate to pass", async () => ((await grpcCheckStatus(name, checked.instanceId, agentWithTls.client)) === "passing" ? true : undefined));
      // The agent's own view: the catalog defers output changes while the status stays critical.
      const refused = await eventually("the check without a certificate to report its failure", async () => {
        const checks = (await consul.agent.check.list()) as Record<string, { ServiceID: string; Status: string; Output: string }>;
        const check = Object.values(checks).find((candidate) => candidate.ServiceID === unchecked.instanceId);
        return check?.Output ? check : undefined;
      });
      assert.equal(refused.Status, "critical");
      // TLS 1.3 refuses the client after its side of the handshake: the check sees either the
      // alert ("certificate required") or the closed connection ("broken pipe"), both UNAVAILABLE.
      assert.match(refused.Output, /code = Unavailable/);

      // And callers with a client certificate reach the checked instance through that agent.
      const client = await pki.issue("mtls-caller");
      const transport = createMeshTransport({ service: name, consul: agentWithTls.client, metrics: new Registry(), tls: { caFile: pki.caFile, ...client } });
      transports.push(transport);
      assert.equal((await createClient(EchoService, transport).echo({ message: "hi" })).instanceId, checked.instanceId);
    } finally {
      await Promise.all(started.map((instance) => killProcess(instance)));
      if (started[1]) await consul.agent.service.deregister(started[1].instanceId);
      await agentWithTls.stop();
    }
  });

  it("reloads the server certificate when its files change", async () => {
    const next = await createTestPki("b");
    const nextServer = await next.issue("server");
    const client = await pki.issue("client2");
    // The new server certificate is signed by CA b; clients still present CA-a certificates.
    await copyFile(nextServer.certFile, serverFiles.certFile);
    await copyFile(nextServer.keyFile, serverFiles.keyFile);
    await eventually("the server to present the new certificate", async () => ((await call({ caFile: next.caFile, ...client })) === "tls-1" ? true : undefined), { timeoutMs: 15_000, intervalMs: 500 });
    const oldTrust = await call({ caFile: pki.caFile, ...client });
    assert.ok(oldTrust instanceof ConnectError, "a client trusting only the old CA still connected");
  });
});
