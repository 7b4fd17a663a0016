/**
 * A bare @grpc/grpc-js server of meshkit.echo.v1.EchoService (the same proto, loaded with
 * proto-loader as a grpc-js user would), with nothing of meshkit in it: the fixed server that
 * client benchmarks measure clients against. Run as its own process so that its CPU is not
 * counted as the client's. Prints `PORT <n>` once it listens on 127.0.0.1.
 *
 * Run: node --import tsx bench/grpc-js-echo-server.ts [port]   (default: a free port)
 */
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const definition = protoLoader.loadSync(path.join(root, "proto/meshkit/echo/v1/echo.proto"), { includeDirs: [path.join(root, "proto")] });
const loaded = grpc.loadPackageDefinition(definition) as unknown as { meshkit: { echo: { v1: { EchoService: grpc.ServiceClientConstructor } } } };
const instanceId = `grpc-js-echo-${process.pid}`;

const server = new grpc.Server();
server.addService(loaded.meshkit.echo.v1.EchoService.service, {
  Echo: (call: grpc.ServerUnaryCall<{ message: string }, unknown>, callback: grpc.sendUnaryData<unknown>) => callback(null, { message: call.request.message, instanceId }),
  EchoStream: (call: grpc.ServerWritableStream<{ message: string; count: number }, unknown>) => {
    for (let sequence = 1; sequence <= Math.min(call.request.count, 1000); sequence++) call.write({ message: call.request.message, sequence, instanceId });
    call.end();
  },
});
server.bindAsync(`127.0.0.1:${process.argv[2] ?? 0}`, grpc.ServerCredentials.createInsecure(), (error, port) => {
  if (error) throw error;
  console.log(`PORT ${port}`);
});
process.on("SIGTERM", () => server.tryShutdown(() => process.exit(0)));
