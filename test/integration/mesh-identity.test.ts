import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { readFile } from "node:fs/promises";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { toBinary, fromBinary, create } from "@bufbuild/protobuf";
import { EchoRequestSchema, EchoResponseSchema, EchoService } from "../../gen/meshkit/echo/v1/echo_pb.js";
import { meshChannelCredentials, registerConsulResolver } from "../../src/grpc-js/index.js";
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

    // Counted per call, logged once per source and reason a minute.
    for (let i = 0; i < 5; i++) assert.equal(await codeOf(echo.echo({ message: "denied" })), Code.PermissionDenied);
    const logged = service!.output.filter((line) => line.includes("mesh call refused") && line.includes(`"source":"${caller}"`));
    assert.equal(logged.length, 1, logged.join("\n"));
    const metrics = await scrapeMetrics(destination, service!.instanceId);
    const denials = new RegExp(`meshkit_server_intention_denials_total\\{source="${caller}",reason="intention"\\} (\\d+)`).exec(metrics);
    assert.ok(Number(denials?.[1]) >= 6, `denials counted: ${denials?.[0]}`);
    assert.match(metrics, new RegExp(`meshkit_mesh_policy_staleness_seconds\\{service="${destination}",kind="intentions"\\} \\d`));

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

  it("an intention with a malformed PathRegex: the rest of the policy applies, what that rule would decide is denied, and the service logs it", async () => {
    await consulRequest("PUT", "/config", { Kind: "service-defaults", Name: destination, Protocol: "grpc" });
    try {
      await writeIntentions(destination, [
        {
          Name: caller,
          Permissions: [
            { Action: "allow", HTTP: { PathRegex: "/meshkit.echo.v1.EchoService/(Echo", Header: [{ Name: "x-route", Present: true }] } },
            { Action: "allow", HTTP: { PathPrefix: "/" } },
          ],
        },
      ]);
      const echo = createClient(EchoService, transport!);
      const flagged = { headers: { "x-route": "1" } };
      await eventually("the broken rule to deny what it would decide", async () => ((await codeOf(echo.echo({ message: "x" }, flagged))) === Code.PermissionDenied ? true : undefined), { timeoutMs: 5_000, intervalMs: 50 });
      assert.equal(await codeOf(echo.echo({ message: "the rest applies" })), "ok");
      assert.ok(service!.output.some((line) => line.includes("some intentions could not be compiled") && line.includes("PathRegex")), "logged");
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
    // Nor does it learn which methods exist: an unknown one is refused the same way.
    const unknown = await rawTlsCall(port, "/meshkit.echo.v1.EchoService/NoSuchMethod", echoBody, { ca: leaf.ca, ALPNProtocols: ["h2"] });
    assert.equal(unknown.grpcStatus, Code.Unauthenticated);
    // With a mesh certificate, an unknown method is UNIMPLEMENTED as usual.
    const unknownWithLeaf = () => rawTlsCall(port, "/meshkit.echo.v1.EchoService/NoSuchMethod", echoBody, { ca: leaf.ca, cert: leaf.cert, key: leaf.key, ALPNProtocols: ["h2"] });
    const known = await unknownWithLeaf();
    assert.equal(known.grpcStatus, Code.Unimplemented);
    // A caller the intentions deny learns no more: PERMISSION_DENIED for a method that does not
    // exist too, as for one that does.
    await writeIntentions(destination, [{ Name: caller, Action: "deny" }]);
    try {
      const deniedUnknown = await eventually("the deny intention to apply to an unknown method", async () => {
        const answer = await unknownWithLeaf();
        return answer.grpcStatus === Code.PermissionDenied ? answer : undefined;
      }, { timeoutMs: 5_000, intervalMs: 50 });
      assert.match(deniedUnknown.grpcMessage, new RegExp(`"${caller}" may not call "${destination}"`));
    } finally {
      await deleteIntentions(destination);
    }
    await eventually("the unknown method to be UNIMPLEMENTED again", async () => ((await unknownWithLeaf()).grpcStatus === Code.Unimplemented ? true : undefined), { timeoutMs: 5_000, intervalMs: 50 });
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

  it("a plain grpc-js channel calls it with meshkit/grpc-js's mesh credentials and a consul:///<service>?mesh=true target", async () => {
    registerConsulResolver({ consul });
    await identity!.ready();
    const credentials = meshChannelCredentials(identity!, destination);
    const channel = new grpc.Client(`consul:///${destination}?mesh=true`, credentials);
    try {
      const echo = (message: string) =>
        new Promise<string>((resolve, reject) =>
          channel.makeUnaryRequest(echoPath, (text: string) => Buffer.from(toBinary(EchoRequestSchema, create(EchoRequestSchema, { message: text }))), (bytes: Buffer) => fromBinary(EchoResponseSchema, bytes).message, message, new grpc.Metadata(), { deadline: Date.now() + 5_000 }, (error, answer) =>
            error ? reject(error) : resolve(answer!),
          ),
        );
      assert.equal(await echo("from grpc-js"), "from grpc-js");
      await writeIntentions(destination, [{ Name: caller, Action: "deny" }]);
      const code = await eventually("the deny to reach the grpc-js channel's calls", async () => {
        const outcome = await echo("denied?").then(() => undefined, (error: grpc.ServiceError) => error.code);
        return outcome;
      }, { timeoutMs: 5_000, intervalMs: 50 });
      assert.equal(code, grpc.status.PERMISSION_DENIED);
    } finally {
      channel.close();
      credentials.stop();
      await deleteIntentions(destination);
    }
  });

  it("a grpc-js mesh channel follows its chain's Redirect to another service and accepts that service's SPIFFE ID at the addresses Consul lists for it", async () => {
    registerConsulResolver({ consul });
    await identity!.ready();
    // A name with no instances of its own, whose resolver sends every call to `destination`.
    const alias = `echo-alias-${suffix}`;
    await consulRequest("PUT", "/config", { Kind: "service-resolver", Name: alias, Redirect: { Service: destination } });
    const credentials = meshChannelCredentials(identity!, alias);
    const channel = new grpc.Client(`consul:///${alias}?mesh=true`, credentials);
    try {
      const echo = () =>
        new Promise<string>((resolve, reject) =>
          channel.makeUnaryRequest(echoPath, (text: string) => Buffer.from(toBinary(EchoRequestSchema, create(EchoRequestSchema, { message: text }))), (bytes: Buffer) => fromBinary(EchoResponseSchema, bytes).message, "redirected", new grpc.Metadata(), { deadline: Date.now() + 5_000 }, (error, reply) =>
            error ? reject(error) : resolve(reply!),
          ),
        );
      // Retried only while an earlier test's deny intention, deleted, may still apply; a refused
      // handshake (UNAVAILABLE naming the SPIFFE ID) fails each try, and the timeout reports it.
      const answer = await eventually(
        "a call through the redirect",
        () =>
          echo().catch((error: grpc.ServiceError) => {
            assert.equal(error.code, grpc.status.PERMISSION_DENIED, `${grpc.status[error.code]}: ${error.details}`);
            return undefined;
          }),
        { timeoutMs: 5_000, intervalMs: 100 },
      );
      assert.equal(answer, "redirected");
    } finally {
      channel.close();
      credentials.stop();
      await consulRequest("DELETE", `/config/service-resolver/${alias}`);
    }
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
      const refused = await createClient(EchoService, impostor).echo({ message: "x" }, { timeoutMs: 5_000 }).then(() => undefined, (error: unknown) => ConnectError.from(error));
      assert.equal(refused?.code, Code.Unavailable);
      assert.match(refused.rawMessage, new RegExp(`SPIFFE ID names "${destination}", not "not-${destination}"`));
    } finally {
      impostor.close();
    }
  });
});

/** The instance's Prometheus text: with the mesh on, from the admin port it registered as Meta.metrics_port. */
async function scrapeMetrics(service: string, instanceId: string): Promise<string> {
  const entries = (await consulRequest("GET", `/health/connect/${service}`)) as { Service: { ID: string; Meta: Record<string, string> } }[];
  const port = entries.find((entry) => entry.Service.ID === instanceId)?.Service.Meta.metrics_port;
  assert.ok(port, "the instance registered its admin port");
  return (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
}

/** A static resolver over the instances Consul's mesh view lists for `service`. */
async function resolverFor(service: string) {
  const { staticResolver } = await import("../../src/client/discovery/static.js");
  const entries = (await consulRequest("GET", `/health/connect/${service}`)) as { Service: { ID: string; Address: string; Port: number } }[];
  return staticResolver(entries.map((entry) => ({ id: entry.Service.ID, address: entry.Service.Address || "127.0.0.1", port: entry.Service.Port, weight: 1, tags: [], meta: {} })));
}
