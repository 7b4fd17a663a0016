import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { readFile } from "node:fs/promises";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { toBinary, create } from "@bufbuild/protobuf";
import { EchoRequestSchema, EchoService } from "../../gen/meshkit/echo/v1/echo_pb.js";
import { createMeshTransport, type MeshTransport } from "../../src/client/index.js";
import { meshIdentity, type MeshIdentity } from "../../src/platform/mesh/identity.js";
import { consul, eventually, grpcCheckStatus } from "../support/infra.js";
import { createTestPki } from "../support/certificates.js";
import { grpcFrame } from "../support/raw-grpc.js";
import { consulRequest, deleteIntentions, leafOf, rawTlsCall, writeIntentions } from "../support/mesh.js";
import { killProcess, startServiceProcess, type ServiceProcess } from "../support/service-process.js";

const echoPath = "/meshkit.echo.v1.EchoService/Echo";
const echoBody = grpcFrame(toBinary(EchoRequestSchema, create(EchoRequestSchema, { message: "hi" })));

/** The code a call ended with: OK, or the ConnectError's. */
async function codeOf(call: Promise<unknown>): Promise<Code | "ok"> {
  try {
    await call;
    return "ok";
  } catch (error) {
    return ConnectError.from(error).code;
  }
}

describe("service mesh identity and intentions (Connect native), against the real Consul agent", function () {
  this.timeout(90_000);
  // Unique names: intentions are global to the shared agent.
  const suffix = randomUUID().slice(0, 8);
  const destination = `echo-mesh-${suffix}`;
  const caller = `web-${suffix}`;
  let service: ServiceProcess | undefined;
  let identity: MeshIdentity | undefined;
  let transport: MeshTransport | undefined;

  before(async () => {
    service = await startServiceProcess("src/reference/services/echo/main.ts", { SERVICE_NAME: destination, MESH_IDENTITY: "true", CONSUL_CHECK_INTERVAL: "1s" });
    identity = meshIdentity(consul, { service: caller });
    transport = createMeshTransport({ service: destination, consul, mesh: identity, retry: false, breaker: false });
  });

  after(async () => {
    transport?.close();
    identity?.close();
    await killProcess(service);
    await deleteIntentions(destination).catch(() => undefined);
  });

  it("registers as a native mesh service, listed in Consul's mesh view, whose gRPC check passes without a certificate", async () => {
    const entries = (await consulRequest("GET", `/health/connect/${destination}`)) as { Service: { ID: string; Connect?: { Native?: boolean } } }[];
    assert.equal(entries.length, 1);
    assert.equal(entries[0]!.Service.ID, service!.instanceId);
    assert.equal(entries[0]!.Service.Connect?.Native, true);
    await eventually("the agent's gRPC check to pass", async () => ((await grpcCheckStatus(destination, service!.instanceId)) === "passing" ? true : undefined));
  });

  it("a mesh client with its own leaf calls it; a deny intention stops the open connection's calls within 1 s; deleting it lets them through", async () => {
    const echo = createClient(EchoService, transport!);
    const answer = await echo.echo({ message: "hello" }, { timeoutMs: 10_000 });
    assert.equal(answer.message, "hello");

    await writeIntentions(destination, [{ Name: caller, Action: "deny" }]);
    const deniedAt = performance.now();
    const denied = await eventually("the deny intention to apply", async () => {
      try {
        await echo.echo({ message: "again" });
        return undefined;
      } catch (error) {
        return ConnectError.from(error);
      }
    }, { timeoutMs: 5_000, intervalMs: 20 });
    assert.ok(performance.now() - deniedAt < 1_000, `applied after ${Math.round(performance.now() - deniedAt)} ms`);
    assert.equal(denied.code, Code.PermissionDenied);
    assert.match(denied.rawMessage, new RegExp(`"${caller}" may not call "${destination}"`));

    await deleteIntentions(destination);
    const allowedAt = performance.now();
    await eventually("the deletion to apply", async () => ((await codeOf(echo.echo({ message: "back" }))) === "ok" ? true : undefined), { timeoutMs: 5_000, intervalMs: 20 });
    assert.ok(performance.now() - allowedAt < 1_000);
  });

  it("L7 intentions: the caller may call Echo and not EchoStream, each decided per gRPC path", async () => {
    await consulRequest("PUT", "/config", { Kind: "service-defaults", Name: destination, Protocol: "grpc" });
    try {
      await writeIntentions(destination, [
        {
          Name: caller,
          Permissions: [
            { Action: "allow", HTTP: { PathExact: echoPath } },
            { Action: "deny", HTTP: { PathPrefix: "/" } },
          ],
        },
      ]);
      const echo = createClient(EchoService, transport!);
      await eventually("the L7 intention to deny EchoStream", async () => {
        const code = await codeOf((async () => {
          for await (const message of echo.echoStream({ message: "x", count: 1 })) void message;
        })());
        return code === Code.PermissionDenied ? true : undefined;
      }, { timeoutMs: 5_000, intervalMs: 50 });
      assert.equal(await codeOf(echo.echo({ message: "still allowed" })), "ok");
    } finally {
      await deleteIntentions(destination);
      await consulRequest("DELETE", `/config/service-defaults/${destination}`);
    }
  });

  it("refuses callers without this mesh's identity, each with a clear answer", async () => {
    const port = service!.port;
    const leaf = await leafOf(caller);
    // No certificate at all: only grpc.health.v1 is open.
    const bare = await rawTlsCall(port, echoPath, echoBody, { ca: leaf.ca, ALPNProtocols: ["h2"] });
    assert.equal(bare.grpcStatus, Code.Unauthenticated);
    assert.match(bare.grpcMessage, /no client certificate/);
    // A certificate from another CA.
    const pki = await createTestPki("mesh-foreign");
    const foreign = await pki.issue(caller);
    const other = await rawTlsCall(port, echoPath, echoBody, { ca: leaf.ca, cert: await readFile(foreign.certFile), key: await readFile(foreign.keyFile), ALPNProtocols: ["h2"] });
    assert.equal(other.grpcStatus, Code.Unauthenticated);
    assert.match(other.grpcMessage, /does not chain to this mesh's CA/);
    // HTTP/1.1 only, by ALPN: refused at the handshake.
    await assert.rejects(rawTlsCall(port, echoPath, echoBody, { ca: leaf.ca, cert: leaf.cert, key: leaf.key, ALPNProtocols: ["http/1.1"] }));
    // A valid leaf and no ALPN at all (as Consul's own proxy dials): served as HTTP/2.
    const noAlpn = await rawTlsCall(port, echoPath, echoBody, { ca: leaf.ca, cert: leaf.cert, key: leaf.key });
    assert.equal(noAlpn.grpcStatus, 0);
  });

  it("the mesh client refuses a server whose SPIFFE ID names another service", async () => {
    // Resolve `destination` but expect a different name: the server's leaf names `destination`.
    const impostor = createMeshTransport({
      service: `not-${destination}`,
      resolver: await resolverFor(destination),
      mesh: identity!,
      retry: false,
      breaker: false,
    });
    try {
      const code = await codeOf(createClient(EchoService, impostor).echo({ message: "x" }, { timeoutMs: 5_000 }));
      assert.equal(code, Code.Unavailable);
    } finally {
      impostor.close();
    }
  });
});

/** A static resolver over the instances Consul's mesh view lists for `service`. */
async function resolverFor(service: string) {
  const { staticResolver } = await import("../../src/client/discovery/static.js");
  const entries = (await consulRequest("GET", `/health/connect/${service}`)) as { Service: { ID: string; Address: string; Port: number } }[];
  return staticResolver(entries.map((entry) => ({ id: entry.Service.ID, address: entry.Service.Address || "127.0.0.1", port: entry.Service.Port, weight: 1, tags: [], meta: {} })));
}
