/**
 * The client under test of the Connect conformance suite (`make conformance`): the meshkit mesh
 * transport (breaker, retry policy, deadline, tracing and metrics as shipped), resolving
 * through a static resolver to the suite's reference server, under a generated Connect client.
 *
 * The mesh transport is a gRPC client: gRPC over HTTP/2, the proto codec, cleartext or TLS (with
 * a client certificate too). test/conformance/client-config.yaml claims exactly that; a request
 * for anything else is answered with an error result, never faked.
 *
 * The runner writes size-prefixed ClientCompatRequests to stdin; each call runs as it arrives
 * (at most `CONFORMANCE_CLIENT_PARALLEL`, default 16, at once) and its ClientCompatResponse is
 * written to stdout when it ends. Logs go to stderr.
 */
import { create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { Registry } from "prom-client";
import { ClientCompatRequestSchema, ClientCompatResponseSchema, type ClientCompatRequest, type ClientCompatResponse } from "../../gen/connectrpc/conformance/v1/client_compat_pb.js";
import { Codec, Compression, HTTPVersion, Protocol } from "../../gen/connectrpc/conformance/v1/config_pb.js";
import { ConformanceService } from "../../gen/connectrpc/conformance/v1/service_pb.js";
import { createMeshTransport, staticResolver } from "../../src/client/index.js";
import { invokeCase } from "./client-calls.js";
import { PemFiles } from "./pem-files.js";
import { startCountingTelemetry } from "./telemetry.js";
import { readMessages, writeMessage } from "./wire.js";

const telemetry = startCountingTelemetry("conformance-client");
const pems = new PemFiles();
const metrics = new Registry();
const parallel = Math.max(1, Number(process.env.CONFORMANCE_CLIENT_PARALLEL ?? 16));

/** Why the mesh client cannot make a call of this configuration, if it cannot. */
function unsupported(request: ClientCompatRequest): string | undefined {
  if (request.protocol !== Protocol.GRPC) return `the mesh client speaks gRPC only, not ${Protocol[request.protocol]}`;
  if (request.httpVersion !== HTTPVersion.HTTP_VERSION_2) return `the mesh client speaks HTTP/2 only, not ${HTTPVersion[request.httpVersion]}`;
  if (request.codec !== Codec.PROTO) return `the mesh client sends the proto codec only, not ${Codec[request.codec]}`;
  if (request.compression !== Compression.IDENTITY && request.compression !== Compression.UNSPECIFIED) return `the mesh client does not compress requests (${Compression[request.compression]} asked)`;
  return undefined;
}

async function run(request: ClientCompatRequest): Promise<ClientCompatResponse> {
  const reason = unsupported(request);
  if (reason) return create(ClientCompatResponseSchema, { testName: request.testName, result: { case: "error", value: { message: reason } } });
  // A transport per test case, as each case is a separate caller: breakers, budgets and
  // connections start fresh, so one case's errors never open the breaker for the next.
  const transport = createMeshTransport({
    service: request.service ?? ConformanceService.typeName,
    resolver: staticResolver([{ address: request.host, port: request.port }]),
    metrics,
    ...(request.messageReceiveLimit > 0 ? { readMaxBytes: request.messageReceiveLimit } : {}),
    ...(request.serverTlsCert.length > 0
      ? {
          tls: {
            caFile: pems.write(request.serverTlsCert),
            ...(request.clientTlsCreds ? { certFile: pems.write(request.clientTlsCreds.cert), keyFile: pems.write(request.clientTlsCreds.key) } : {}),
          },
        }
      : {}),
  });
  try {
    const result = await invokeCase(createClient(ConformanceService, transport), request);
    return create(ClientCompatResponseSchema, { testName: request.testName, result: { case: "response", value: result } });
  } catch (caught) {
    return create(ClientCompatResponseSchema, { testName: request.testName, result: { case: "error", value: { message: String((caught as Error)?.message ?? caught) } } });
  } finally {
    transport.close();
  }
}

// A rejection nobody awaits (seen once under load: a deadline's abort reason, raised from
// connect's deadline timer during a stream) must not take down every other case in flight:
// report it on stderr, where the runner shows it, and carry on.
process.on("unhandledRejection", (reason) => {
  process.stderr.write(`conformance-client: unhandled rejection: ${reason instanceof Error ? (reason.stack ?? reason.message) : String(reason)}\n`);
});

const inFlight = new Set<Promise<void>>();
for await (const request of readMessages(ClientCompatRequestSchema, process.stdin)) {
  const call = run(request).then((response) => writeMessage(ClientCompatResponseSchema, response, process.stdout));
  inFlight.add(call);
  void call.finally(() => inFlight.delete(call));
  if (inFlight.size >= parallel) await Promise.race(inFlight);
}
await Promise.all(inFlight);
telemetry.report();
