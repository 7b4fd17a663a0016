import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { once } from "node:events";
import net from "node:net";
import * as grpc from "@grpc/grpc-js";
import { create, type MessageShape } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { EchoRequestSchema, EchoResponseSchema, EchoService } from "../../gen/meshkit/echo/v1/echo_pb.js";
import { createMeshTransport } from "../../src/client/index.js";
import { meshIdentity } from "../../src/platform/mesh/identity.js";
import { consul, consulAddress, eventually } from "../support/infra.js";
import { freePort } from "../support/free-port.js";
import { codec, startGrpcJsServer, unaryMethod } from "../support/grpc-js-server.js";
import { consulRequest, deleteIntentions, writeIntentions } from "../support/mesh.js";
import { killProcess, startServiceProcess, type ServiceProcess } from "../support/service-process.js";

const echoPath = `/${EchoService.typeName}/Echo`;

/** A plain @grpc/grpc-js server with EchoService, knowing nothing of the mesh. */
function startPlainGrpcServer(): Promise<{ port: number; stop: () => void }> {
  return startGrpcJsServer([unaryMethod(EchoService.method.echo, (call, callback) => callback(null, create(EchoResponseSchema, { message: call.request.message, instanceId: "plain-grpc-js" })))]);
}

/** Runs Consul's built-in mesh proxy (`consul connect proxy ...`) against the shared agent. */
function startConsulProxy(args: string[]): { child: ChildProcess; output: string[]; stop: () => Promise<void> } {
  const child = spawn("consul", ["connect", "proxy", "-http-addr", `${consulAddress.host}:${consulAddress.port}`, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  const output: string[] = [];
  child.stdout!.on("data", (chunk: Buffer) => output.push(chunk.toString()));
  child.stderr!.on("data", (chunk: Buffer) => output.push(chunk.toString()));
  return {
    child,
    output,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, "exit");
      child.kill("SIGKILL");
      await exited;
    },
  };
}

const listening = (port: number) =>
  new Promise<true | undefined>((resolve) => {
    const socket = net.connect(port, "127.0.0.1", () => {
      socket.destroy();
      resolve(true);
    });
    socket.on("error", () => resolve(undefined));
  });

function grpcJsEcho(client: grpc.Client, message: string): Promise<MessageShape<typeof EchoResponseSchema>> {
  return new Promise((resolve, reject) =>
    client.makeUnaryRequest(echoPath, codec(EchoRequestSchema).serialize, codec(EchoResponseSchema).deserialize, create(EchoRequestSchema, { message }), new grpc.Metadata(), { deadline: Date.now() + 5_000 }, (error, response) =>
      error ? reject(error) : resolve(response!),
    ),
  );
}

describe("the mesh interoperates with Consul's own data plane (`consul connect proxy`)", function () {
  this.timeout(90_000);
  const suffix = randomUUID().slice(0, 8);

  it("a meshkit mesh client calls a plain grpc-js server behind `consul connect proxy -sidecar-for`", async () => {
    const legacy = `legacy-${suffix}`;
    const caller = `web-${suffix}`;
    const server = await startPlainGrpcServer();
    const sidecarPort = await freePort();
    await consulRequest("PUT", "/agent/service/register", {
      Name: legacy,
      ID: legacy,
      Address: "127.0.0.1",
      Port: server.port,
      Connect: { SidecarService: { Port: sidecarPort, Checks: [{ Name: "sidecar listening", TCP: `127.0.0.1:${sidecarPort}`, Interval: "1s" }] } },
    });
    const proxy = startConsulProxy(["-sidecar-for", legacy]);
    const identity = meshIdentity(consul, { service: caller });
    const transport = createMeshTransport({ service: legacy, consul, mesh: identity, retry: false });
    try {
      await eventually("the sidecar to listen", () => listening(sidecarPort), { timeoutMs: 30_000 });
      const echo = createClient(EchoService, transport);
      const answer = await eventually("a call through the sidecar", async () => (await echo.echo({ message: "through envoy's stand-in" }, { timeoutMs: 3_000 })) ?? undefined, { timeoutMs: 30_000, intervalMs: 500 });
      assert.equal(answer.message, "through envoy's stand-in");
      assert.equal(answer.instanceId, "plain-grpc-js");
      // Discovered through the mesh view: the instance dialed is the sidecar, not the server itself.
      assert.deepEqual(transport.endpoints.map((endpoint) => endpoint.instance.port), [sidecarPort]);
    } finally {
      transport.close();
      identity.close();
      await proxy.stop();
      server.stop();
      await consulRequest("PUT", `/agent/service/deregister/${legacy}`).catch(() => undefined);
    }
  });

  describe("a plain grpc-js client calls a meshkit native service through `consul connect proxy -upstream`", () => {
    const destination = `echo-native-${suffix}`;
    const developer = `dev-${suffix}`;
    let service: ServiceProcess | undefined;
    let proxy: ReturnType<typeof startConsulProxy> | undefined;
    let client: grpc.Client | undefined;

    before(async () => {
      service = await startServiceProcess("src/reference/services/echo/main.ts", { SERVICE_NAME: destination, MESH_IDENTITY: "true", CONSUL_CHECK_INTERVAL: "1s" });
      const upstreamPort = await freePort();
      proxy = startConsulProxy(["-service", developer, "-upstream", `${destination}:${upstreamPort}`]);
      await eventually("the upstream listener", () => listening(upstreamPort), { timeoutMs: 30_000 });
      client = new grpc.Client(`127.0.0.1:${upstreamPort}`, grpc.credentials.createInsecure());
    });

    after(async () => {
      client?.close();
      await proxy?.stop();
      await killProcess(service);
      await deleteIntentions(destination).catch(() => undefined);
    });

    it("is allowed when an intention allows the proxy's service, PERMISSION_DENIED when one denies it, switching both ways within 1 s on the open connection", async () => {
      await writeIntentions(destination, [{ Name: developer, Action: "allow" }, { Name: "*", Action: "deny" }]);
      const answer = await eventually("a call through the upstream", async () => grpcJsEcho(client!, "hello"), { timeoutMs: 30_000, intervalMs: 500 });
      assert.equal(answer.message, "hello");

      const outcome = () => grpcJsEcho(client!, "again").then(() => "ok" as const, (error: grpc.ServiceError) => error.code);
      await writeIntentions(destination, [{ Name: developer, Action: "deny" }]);
      const deniedAt = performance.now();
      await eventually("the deny to apply", async () => ((await outcome()) === grpc.status.PERMISSION_DENIED ? true : undefined), { timeoutMs: 5_000, intervalMs: 20 });
      assert.ok(performance.now() - deniedAt < 1_000, `deny applied after ${Math.round(performance.now() - deniedAt)} ms`);

      await writeIntentions(destination, [{ Name: developer, Action: "allow" }]);
      const allowedAt = performance.now();
      await eventually("the allow to apply", async () => ((await outcome()) === "ok" ? true : undefined), { timeoutMs: 5_000, intervalMs: 20 });
      assert.ok(performance.now() - allowedAt < 1_000, `allow applied after ${Math.round(performance.now() - allowedAt)} ms`);
    });
  });
});
