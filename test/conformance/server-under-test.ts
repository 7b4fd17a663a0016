/**
 * The server under test of the Connect conformance suite (`make conformance`): the meshkit
 * server host, with the interceptors every service runs (tracing, metrics, error mapping,
 * deadline, validation), serving connectrpc.conformance.v1.ConformanceService.
 *
 * The runner starts one process per server configuration and writes a size-prefixed
 * ServerCompatRequest to its stdin; it answers with a ServerCompatResponse (where it listens)
 * on stdout, then serves the suite's reference clients until SIGTERM. Logs go to stderr.
 */
import { create } from "@bufbuild/protobuf";
import { createValidateInterceptor } from "@connectrpc/validate";
import { pino } from "pino";
import { Registry } from "prom-client";
import { ServerCompatRequestSchema, ServerCompatResponseSchema } from "../../gen/connectrpc/conformance/v1/server_compat_pb.js";
import { errorMapping, serverDeadline, serverMetrics, serverTracing, startServerHost, unaryValidation } from "../../src/server/index.js";
import { conformanceRoutes } from "./conformance-service.js";
import { PemFiles } from "./pem-files.js";
import { startCountingTelemetry } from "./telemetry.js";
import { readMessages, writeMessage } from "./wire.js";

const telemetry = startCountingTelemetry("conformance-server");
const log = pino({ name: "conformance-server", level: process.env.LOG_LEVEL ?? "warn" }, pino.destination(2));

const { value: request } = await readMessages(ServerCompatRequestSchema, process.stdin).next();
if (!request) throw new Error("stdin ended before a ServerCompatRequest arrived");

const pems = new PemFiles();
const tls =
  request.useTls && request.serverCreds
    ? {
        certFile: pems.write(request.serverCreds.cert),
        keyFile: pems.write(request.serverCreds.key),
        // A client certificate given: only clients presenting it get through the handshake.
        ...(request.clientTlsCert.length > 0 ? { caFile: pems.write(request.clientTlsCert), requireClientCert: true } : {}),
      }
    : undefined;

// One host serves every protocol and HTTP version on one port, so `protocol` and
// `httpVersion` of the request need no setting of their own.
const host = await startServerHost({
  routes: conformanceRoutes,
  // The suite's limit (0: none asked) replaces the host's default of 4 MiB.
  ...(request.messageReceiveLimit > 0 ? { readMaxBytes: request.messageReceiveLimit } : {}),
  // The same stack, in the same order, as runService gives every service.
  interceptors: [serverTracing(), serverMetrics(new Registry()), errorMapping(log), serverDeadline(), unaryValidation(createValidateInterceptor())],
  ...(tls ? { tls } : {}),
});

writeMessage(
  ServerCompatResponseSchema,
  create(ServerCompatResponseSchema, { host: host.host, port: host.port, ...(tls && request.serverCreds ? { pemCert: request.serverCreds.cert } : {}) }),
  process.stdout,
);

// The runner waits for this process to exit after SIGTERM before it starts the next server.
// When this program was written, the host's drain waited on idle HTTP/1.1 keep-alive
// connections; the host now closes them at once (test/integration/drain.test.ts), and a full
// server-mode run no longer reaches this limit. It stays as a guard: should a drain hang again,
// the run goes on and stderr says so.
const drainLimitMs = 2000;
const stop = () => {
  const overdue = setTimeout(() => {
    process.stderr.write(`conformance-server: the host's drain had not finished after ${drainLimitMs} ms; exiting anyway\n`);
    telemetry.report();
    process.exit(0);
  }, drainLimitMs);
  void host.drain(1000).finally(() => {
    clearTimeout(overdue);
    telemetry.report();
    process.exit(0);
  });
};
process.once("SIGTERM", stop);
process.once("SIGINT", stop);
