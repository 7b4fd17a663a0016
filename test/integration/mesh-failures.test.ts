import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomUUID, X509Certificate } from "node:crypto";
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { Registry } from "prom-client";
import { EchoRequestSchema, EchoService } from "../../gen/meshkit/echo/v1/echo_pb.js";
import { createMeshTransport, type MeshTransport } from "../../src/client/index.js";
import { createConsulClient } from "../../src/platform/consul.js";
import { meshIdentity, type MeshIdentity } from "../../src/platform/mesh/identity.js";
import { eventually } from "../support/infra.js";
import { consulRequest, leafOf, rawTlsCall, writeIntentions } from "../support/mesh.js";
import { raiseIndex, startPrivateConsul, type PrivateConsul } from "../support/private-consul.js";
import { grpcFrame } from "../support/raw-grpc.js";
import { killProcess, startServiceProcess, type ServiceProcess } from "../support/service-process.js";

const echoPath = "/meshkit.echo.v1.EchoService/Echo";
const echoBody = grpcFrame(toBinary(EchoRequestSchema, create(EchoRequestSchema, { message: "hi" })));
const openssl = (...args: string[]) => promisify(execFile)("openssl", args);

/** The code a call ended with: "ok", or the ConnectError's. */
const outcome = (call: Promise<unknown>): Promise<Code | "ok"> => call.then(() => "ok" as const, (error: unknown) => ConnectError.from(error).code);

/** Waits until `service` has a passing instance in Consul's mesh view. */
async function passing(agent: PrivateConsul, service: string, token?: string): Promise<void> {
  await eventually(`a passing instance of ${service}`, async () => {
    const entries = (await consulRequest("GET", `/health/connect/${service}?passing=true`, undefined, { agent: agent.address, ...(token ? { token } : {}) })) as unknown[];
    return entries.length > 0 ? true : undefined;
  });
}

/** A mesh client of `service` on `agent`, calling as `caller`. */
function meshClient(agent: PrivateConsul, caller: string, service: string, token?: string): { identity: MeshIdentity; transport: MeshTransport; echo: ReturnType<typeof createClient<typeof EchoService>> } {
  const consul = token === undefined ? agent.client : createConsulClient({ host: "127.0.0.1", port: agent.httpPort }, token);
  const identity = meshIdentity(consul, { service: caller });
  const transport = createMeshTransport({ service, consul, mesh: identity, retry: false, breaker: false, metrics: new Registry() });
  return { identity, transport, echo: createClient(EchoService, transport) };
}

/**
 * A CA of the test's own, made the private agent's CA (Consul's built-in provider accepts a root
 * and key), so the test can also sign certificates no agent would issue: expired, without a
 * SPIFFE ID, of another trust domain.
 */
async function adoptOwnCa(agent: PrivateConsul): Promise<{ sign: (name: string, options: { uri?: string; expired?: boolean }) => Promise<{ cert: Buffer; key: Buffer }> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "meshkit-mesh-ca-"));
  const file = (name: string) => path.join(dir, name);
  await openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", file("ca.key"), "-out", file("ca.crt"), "-days", "3", "-subj", "/CN=meshkit test mesh CA",
    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature");
  await consulRequest("PUT", "/connect/ca/configuration", { Provider: "consul", Config: { PrivateKey: await readFile(file("ca.key"), "utf8"), RootCert: await readFile(file("ca.crt"), "utf8") } }, { agent: agent.address });
  await writeFile(file("index.txt"), "");
  await writeFile(file("serial"), "1000\n");
  await writeFile(file("ca.cnf"), `[ca]\ndefault_ca = test\n[test]\ndir = ${dir}\ndatabase = $dir/index.txt\nserial = $dir/serial\nnew_certs_dir = $dir\ncertificate = $dir/ca.crt\nprivate_key = $dir/ca.key\ndefault_md = sha256\npolicy = any\nunique_subject = no\ncopy_extensions = none\n[any]\ncommonName = supplied\n`);
  return {
    async sign(name, { uri, expired }) {
      await openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", file(`${name}.key`), "-out", file(`${name}.csr`), "-subj", `/CN=${name}`);
      await writeFile(file(`${name}.ext`), `[leaf]\nbasicConstraints = CA:FALSE\nkeyUsage = digitalSignature,keyEncipherment,keyAgreement\nextendedKeyUsage = serverAuth,clientAuth\nsubjectAltName = ${uri ? `URI:${uri}` : "DNS:localhost"}\n`);
      const dates = expired ? ["-startdate", "20200101000000Z", "-enddate", "20200102000000Z"] : ["-days", "1"];
      await openssl("ca", "-batch", "-config", file("ca.cnf"), "-in", file(`${name}.csr`), "-out", file(`${name}.crt`), "-extfile", file(`${name}.ext`), "-extensions", "leaf", "-notext", ...dates);
      return { cert: await readFile(file(`${name}.crt`)), key: await readFile(file(`${name}.key`)) };
    },
  };
}

describe("the mesh under failures and attacks, each against a Consul agent of the test's own", function () {
  this.timeout(120_000);
  const suffix = randomUUID().slice(0, 8);

  describe("on an agent with a CA of the test's own", () => {
    const destination = `echo-ca-${suffix}`;
    let agent: PrivateConsul;
    let service: ServiceProcess | undefined;
    let ca: Awaited<ReturnType<typeof adoptOwnCa>>;

    before(async () => {
      agent = await startPrivateConsul();
      ca = await adoptOwnCa(agent);
      service = await startServiceProcess("src/reference/services/echo/main.ts", { SERVICE_NAME: destination, CONSUL_HTTP_ADDR: agent.address, MESH_IDENTITY: "true" });
    });
    after(async () => {
      await killProcess(service);
      await agent?.stop();
    });

    it("refuses a certificate of the mesh's CA that is expired, carries no SPIFFE ID, or names another trust domain", async () => {
      const { ca: roots } = await leafOf(destination, { agent: agent.address });
      const { TrustDomain } = (await consulRequest("GET", "/agent/connect/ca/roots", undefined, { agent: agent.address })) as { TrustDomain: string };
      const cases: [string, { uri?: string; expired?: boolean }, RegExp][] = [
        ["expired", { uri: `spiffe://${TrustDomain}/ns/default/dc/dc1/svc/web`, expired: true }, /does not chain to this mesh's CA roots \(CERT_HAS_EXPIRED\)/],
        ["no-spiffe", {}, /carries no SPIFFE service ID/],
        ["foreign", { uri: "spiffe://11111111-2222-3333-4444-555555555555.consul/ns/default/dc/dc1/svc/web" }, /of trust domain 11111111-2222-3333-4444-555555555555\.consul, not this mesh's/],
      ];
      for (const [name, options, message] of cases) {
        const { cert, key } = await ca.sign(name, options);
        const answer = await rawTlsCall(service!.port, echoPath, echoBody, { ca: roots, cert, key, ALPNProtocols: ["h2"] });
        assert.equal(answer.grpcStatus, Code.Unauthenticated, name);
        assert.match(answer.grpcMessage, message, name);
      }
      // And the same CA's certificate with this mesh's SPIFFE ID is a caller like any other.
      const valid = await ca.sign("valid", { uri: `spiffe://${TrustDomain}/ns/default/dc/dc1/svc/web` });
      assert.equal((await rawTlsCall(service!.port, echoPath, echoBody, { ca: roots, ...valid, ALPNProtocols: ["h2"] })).grpcStatus, 0);
    });
  });

  it("rotates the CA root under steady load with no failed call", async () => {
    const destination = `echo-rotate-${suffix}`;
    const agent = await startPrivateConsul();
    const service = await startServiceProcess("src/reference/services/echo/main.ts", { SERVICE_NAME: destination, CONSUL_HTTP_ADDR: agent.address, MESH_IDENTITY: "true", CONSUL_CHECK_INTERVAL: "1s" });
    await passing(agent, destination);
    const client = meshClient(agent, `web-${suffix}`, destination);
    const failures: string[] = [];
    let calls = 0;
    let running = true;
    // Four callers in a loop; bounded: a run of failures ends it rather than spinning.
    const load = Promise.all(Array.from({ length: 4 }, async () => {
      while (running && failures.length < 20) {
        calls++;
        await client.echo.echo({ message: "steady" }, { timeoutMs: 5_000 }).catch((error: unknown) => failures.push(String(error)));
      }
    }));
    try {
      await eventually(`the first calls (failures: ${failures.slice(0, 3).join("; ")})`, async () => (calls > 20 ? true : failures.length > 0 ? Promise.reject(new Error(failures[0])) : undefined));
      const before = (await consulRequest("GET", "/agent/connect/ca/roots", undefined, { agent: agent.address })) as { ActiveRootID: string };
      await consulRequest("PUT", "/connect/ca/configuration", { Provider: "consul", Config: { PrivateKeyType: "rsa", PrivateKeyBits: 2048 } }, { agent: agent.address });
      const after = await eventually("a new active root", async () => {
        const roots = (await consulRequest("GET", "/agent/connect/ca/roots", undefined, { agent: agent.address })) as { ActiveRootID: string; Roots: { ID: string; RootCert: string }[] };
        return roots.ActiveRootID !== before.ActiveRootID ? roots : undefined;
      });
      assert.equal(after.Roots.length, 2, "the old and the new root overlap");
      // The agent re-signs leaves after a rotation (with some jitter): wait for both sides' leaves
      // from the new root, then open a new connection with them, which the server must accept.
      const newRoot = new X509Certificate(after.Roots.find((root) => root.ID === after.ActiveRootID)!.RootCert);
      const fromNewRoot = (pem: string | undefined) => pem !== undefined && new X509Certificate(pem).checkIssued(newRoot);
      await eventually("the client's and the server's leaves from the new root", async () => {
        const serverLeaf = await leafOf(destination, { agent: agent.address });
        return fromNewRoot(client.identity.current()?.certPem) && fromNewRoot(serverLeaf.cert) ? true : undefined;
      }, { timeoutMs: 60_000, intervalMs: 500 });
      const newLeaf = await leafOf(`web-${suffix}`, { agent: agent.address });
      assert.equal((await rawTlsCall(service.port, echoPath, echoBody, { ca: newLeaf.ca, cert: newLeaf.cert, key: newLeaf.key, ALPNProtocols: ["h2"] })).grpcStatus, 0, "a new connection with a leaf of the new root");
      const callsAtRotation = calls;
      await eventually("calls after the rotation", async () => (calls > callsAtRotation + 50 ? true : undefined));
    } finally {
      running = false;
      await load;
      client.transport.close();
      client.identity.close();
      await killProcess(service);
      await agent.stop();
    }
    assert.deepEqual(failures, [], `${failures.length} of ${calls} calls failed`);
  });

  it("keeps the last known intentions while Consul restarts empty: no call it denied gets through", async () => {
    const destination = `echo-restart-${suffix}`;
    const agent = await startPrivateConsul();
    await raiseIndex(agent);
    await writeIntentions(destination, [{ Name: `bad-${suffix}`, Action: "deny" }], { agent: agent.address });
    const service = await startServiceProcess("src/reference/services/echo/main.ts", { SERVICE_NAME: destination, CONSUL_HTTP_ADDR: agent.address, MESH_IDENTITY: "true", CONSUL_REREGISTER_INTERVAL_MS: "500", CONSUL_CHECK_INTERVAL: "1s" });
    await passing(agent, destination);
    const denied = meshClient(agent, `bad-${suffix}`, destination);
    const allowed = meshClient(agent, `good-${suffix}`, destination);
    const letThrough: number[] = [];
    let running = true;
    const probe = (async () => {
      while (running) {
        if ((await outcome(denied.echo.echo({ message: "let me in" }, { timeoutMs: 2_000 }))) === "ok") letThrough.push(performance.now());
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    })();
    try {
      assert.equal(await outcome(allowed.echo.echo({ message: "before" })), "ok");
      assert.equal(await outcome(denied.echo.echo({ message: "before" })), Code.PermissionDenied);
      await agent.stop();
      await agent.start();
      // The agent answers again, empty: no intention at all, which with ACLs off means allow.
      await passing(agent, destination);
      await new Promise((resolve) => setTimeout(resolve, 3_000));
    } finally {
      running = false;
      await probe;
      for (const client of [denied, allowed]) {
        client.transport.close();
        client.identity.close();
      }
      await killProcess(service);
      await agent.stop();
    }
    assert.deepEqual(letThrough, [], "a denied caller got through while the agent was empty");
  });

  it("on an agent with ACLs (default deny): a token with service:write and intentions:read is all a service needs, and no intention means deny", async () => {
    const management = randomUUID();
    const agent = await startPrivateConsul(`
acl {
  enabled        = true
  default_policy = "deny"
  tokens {
    initial_management = "${management}"
    agent              = "${management}"
  }
}
`);
    const destination = `echo-acl-mesh-${suffix}`;
    const caller = `web-acl-${suffix}`;
    const asManagement = { agent: agent.address, token: management };
    const tokenFor = async (name: string, rules: string) => {
      const policy = (await consulRequest("PUT", "/acl/policy", { Name: `${name}-${suffix}`, Rules: rules }, asManagement)) as { ID: string };
      return ((await consulRequest("PUT", "/acl/token", { Policies: [{ ID: policy.ID }] }, asManagement)) as { SecretID: string }).SecretID;
    };
    const serviceToken = await tokenFor(destination, `service "${destination}" { policy = "write" intentions = "read" }`);
    const callerToken = await tokenFor(caller, `service "${caller}" { policy = "write" }\nservice "${destination}" { policy = "read" }\nnode_prefix "" { policy = "read" }`);
    const service = await startServiceProcess("src/reference/services/echo/main.ts", { SERVICE_NAME: destination, CONSUL_HTTP_ADDR: agent.address, CONSUL_HTTP_TOKEN: serviceToken, MESH_IDENTITY: "true", CONSUL_CHECK_INTERVAL: "1s" });
    await passing(agent, destination, management);
    const client = meshClient(agent, caller, destination, callerToken);
    try {
      const refused = await client.echo.echo({ message: "no intention yet" }, { timeoutMs: 10_000 }).then(() => undefined, (error: unknown) => ConnectError.from(error));
      assert.equal(refused?.code, Code.PermissionDenied, String(refused));
      await writeIntentions(destination, [{ Name: caller, Action: "allow" }], asManagement);
      await eventually("the allow intention to apply", async () => ((await outcome(client.echo.echo({ message: "allowed" }))) === "ok" ? true : undefined), { timeoutMs: 5_000, intervalMs: 50 });
    } finally {
      client.transport.close();
      client.identity.close();
      await killProcess(service);
      await agent.stop();
    }
  });
});
