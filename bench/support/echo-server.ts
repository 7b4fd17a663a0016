/**
 * One echo server of `make bench-calls`, in a process of its own so that the load generator
 * (ghz), the server and the benchmark never share a core's event loop. The first argument picks
 * the kind:
 *   - grpc-js:           a bare @grpc/grpc-js server of the same proto (with grpc-health-check)
 *   - connect-node:      a bare http2.createServer(connectNodeAdapter(...)), no interceptors
 *   - host-connect-node: the server host with every call through connect-node (leanGrpcPath: false),
 *                        no interceptors: the host as it shipped before the lean gRPC path
 *   - host:              the server host, no interceptors
 *   - grpc-js-mtls:      the bare grpc-js server with mutual TLS (client certificates required),
 *                        from the PEM files named by BENCH_TLS_CA, BENCH_TLS_CERT, BENCH_TLS_KEY
 *   - grpc-js-otel:      the tracing peer: the bare grpc-js server traced by
 *                        @opentelemetry/instrumentation-grpc under the OpenTelemetry Node SDK,
 *                        every span exported over OTLP; run it with
 *                        `node --import <compiled bench/support/peer-telemetry.js>` (it refuses to
 *                        start uninstrumented)
 * (The host with its interceptors on is the echo service itself, src/reference/services/echo/main.ts.)
 * The host answers uncompressed, as the grpc-js servers do: ghz offers gzip, and the host would
 * otherwise gzip every 10 KB answer (calls-server.bench.ts measures that apart).
 * It prints one JSON line {"port": N} on stdout once it listens, and serves until killed.
 */
import { readFileSync } from "node:fs";
import http2 from "node:http2";
import path from "node:path";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { HealthImplementation } from "grpc-health-check";
import { startServerHost } from "../../src/server/host.js";
import { echoRoutes, maxStreamCount } from "../../src/reference/services/echo/routes.js";

const projectRoot = path.resolve(import.meta.dirname, "../..");
const kind = process.argv[2];
// The peer's id is 10 characters, as long as the echo service's in the bench ("bench-echo"), so
// that the two servers its target compares send the same bytes.
const instanceId = kind === "grpc-js-otel" ? "bench-otel" : `bench-${kind}`;

async function grpcJsServer(credentials = grpc.ServerCredentials.createInsecure()): Promise<number> {
  const definition = protoLoader.loadSync(path.join(projectRoot, "proto/meshkit/echo/v1/echo.proto"), { includeDirs: [path.join(projectRoot, "proto")] });
  const loaded = grpc.loadPackageDefinition(definition) as unknown as { meshkit: { echo: { v1: { EchoService: grpc.ServiceClientConstructor } } } };
  const server = new grpc.Server();
  type EchoRequest = { message: string; count: number };
  server.addService(loaded.meshkit.echo.v1.EchoService.service, {
    echo: (call: grpc.ServerUnaryCall<EchoRequest, unknown>, callback: grpc.sendUnaryData<unknown>) => callback(null, { message: call.request.message, instanceId }),
    echoStream: (call: grpc.ServerWritableStream<EchoRequest, unknown>) => {
      // The same bound as the echo service's, so both do the same work per call.
      if (call.request.count > maxStreamCount) return call.destroy(Object.assign(new Error("count too large"), { code: grpc.status.INVALID_ARGUMENT }));
      for (let sequence = 1; sequence <= call.request.count && !call.cancelled; sequence++) call.write({ message: call.request.message, sequence, instanceId });
      call.end();
    },
  });
  new HealthImplementation({ "": "SERVING" }).addToServer(server);
  return new Promise((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", credentials, (error, port) => (error ? reject(error) : resolve(port))),
  );
}

async function connectNodeServer(): Promise<number> {
  const server = http2.createServer(connectNodeAdapter({ routes: echoRoutes(instanceId) }));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return (server.address() as { port: number }).port;
}

async function main(): Promise<number> {
  switch (kind) {
    case "grpc-js":
      return grpcJsServer();
    case "connect-node":
      return connectNodeServer();
    case "host-connect-node":
      return (await startServerHost({ routes: echoRoutes(instanceId), leanGrpcPath: false, compression: false })).port;
    case "host":
      return (await startServerHost({ routes: echoRoutes(instanceId), compression: false })).port;
    case "grpc-js-otel":
      // shimmer marks what it wraps: without the instrumentation this would measure a bare server.
      if (!("__wrapped" in grpc.Server.prototype.register)) throw new Error("grpc-js-otel: @grpc/grpc-js is not instrumented; start with node --import bench/support/peer-telemetry.js");
      return grpcJsServer();
    case "grpc-js-mtls": {
      const pem = (name: string) => readFileSync(process.env[name] ?? "");
      return grpcJsServer(grpc.ServerCredentials.createSsl(pem("BENCH_TLS_CA"), [{ cert_chain: pem("BENCH_TLS_CERT"), private_key: pem("BENCH_TLS_KEY") }], true));
    }
    default:
      throw new Error(`unknown server kind "${kind}": grpc-js, connect-node, host-connect-node, host, grpc-js-mtls or grpc-js-otel`);
  }
}

console.log(JSON.stringify({ port: await main() }));
// SIGINT exits normally, so that a run under `node --cpu-prof` writes its profile.
process.once("SIGINT", () => process.exit(0));
