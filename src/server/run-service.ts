import { randomUUID } from "node:crypto";
import type { ConnectRouter } from "@connectrpc/connect";
import { readEnv } from "../platform/config.js";
import { createConsulClient, defaultConsulAddress } from "../platform/consul.js";
import { createLogger } from "../platform/log.js";
import { startTelemetry } from "../platform/telemetry.js";
import { ServingStatus } from "./health.js";
import { startServerHost } from "./host.js";
import { serverDeadline } from "./interceptors/deadline.js";
import { serverTracing } from "./interceptors/tracing.js";
import { registerInConsul } from "./registration.js";

/** ServiceDefinition is what a service's entry point hands to `runService`. */
export interface ServiceDefinition {
  /** Consul service name, also the OpenTelemetry `service.name`. */
  name: string;
  version: string;
  /** Mounts the service's RPCs; receives the instance id the process registers as. */
  routes: (instanceId: string) => (router: ConnectRouter) => void;
}

/**
 * runService is the whole life of a service process: read and validate the environment, start
 * tracing, serve on one port, register in Consul with a gRPC check, and on SIGTERM or SIGINT
 * leave cleanly: NOT_SERVING, deregister, drain in-flight calls, flush spans, exit 0.
 *
 * Environment: `HOST` (default 127.0.0.1), `PORT` (default 0: any free port), `ADVERTISE_ADDRESS`
 * (default HOST), `INSTANCE_ID` (default name-uuid), `CONSUL_HTTP_ADDR` (default 127.0.0.1:8500),
 * `CONSUL_CHECK_INTERVAL` (default 5s), `DRAIN_TIMEOUT_MS` (default 10000),
 * `OTEL_EXPORTER_OTLP_ENDPOINT` (default http://127.0.0.1:4317).
 */
export async function runService(definition: ServiceDefinition): Promise<void> {
  const env = readEnv();
  const host = env.string("HOST", "127.0.0.1");
  const port = env.port("PORT", 0);
  const advertiseAddress = env.string("ADVERTISE_ADDRESS", host);
  const instanceId = env.string("INSTANCE_ID", `${definition.name}-${randomUUID()}`);
  const consulAddress = env.hostPort("CONSUL_HTTP_ADDR", defaultConsulAddress);
  const checkInterval = env.string("CONSUL_CHECK_INTERVAL", "5s");
  const drainTimeoutMs = env.int("DRAIN_TIMEOUT_MS", 10_000, { min: 0 });
  env.done();

  const log = createLogger(definition.name, { instance: instanceId });
  const telemetry = startTelemetry({ serviceName: definition.name, serviceVersion: definition.version, instanceId });
  const server = await startServerHost({ routes: definition.routes(instanceId), host, port, interceptors: [serverTracing(), serverDeadline()] });
  const consul = createConsulClient(consulAddress);
  const registration = await registerInConsul(consul, {
    name: definition.name,
    id: instanceId,
    address: advertiseAddress,
    port: server.port,
    tags: ["grpc", "grpc-web", "connect"],
    meta: { version: definition.version, protocols: "grpc,grpc-web,connect" },
    checkInterval,
  });
  log.info({ address: `${server.host}:${server.port}`, services: server.serviceNames }, "serving and registered in Consul");

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "shutting down: deregistering, then draining in-flight calls");
    server.health.setAll(ServingStatus.NOT_SERVING);
    await registration.deregister().catch((error: unknown) => log.error({ err: error }, "deregistration failed"));
    await server.drain(drainTimeoutMs);
    await telemetry.shutdown().catch((error: unknown) => log.warn({ err: error }, "span flush failed"));
    log.info("stopped");
    process.exit(0);
  };
  process.once("SIGTERM", () => void stop("SIGTERM"));
  process.once("SIGINT", () => void stop("SIGINT"));
}
