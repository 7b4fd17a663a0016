import type http from "node:http";
import type { DescMethod } from "@bufbuild/protobuf";
import type { ConnectRouter, Interceptor } from "@connectrpc/connect";
import { createValidateInterceptor } from "@connectrpc/validate";
import { readEnv, type EnvReader } from "../platform/config.js";
import { consulAddressFromEnv, createConsulClient, type ConsulClient } from "../platform/consul.js";
import { createLogger, type Logger } from "../platform/log.js";
import { startServiceTelemetry } from "../platform/telemetry.js";
import { ServingStatus } from "./health.js";
import { startServerHost } from "./host.js";
import { defaultHandshakeTimeoutMs } from "./connection-tracker.js";
import { serverDeadline } from "./interceptors/deadline.js";
import { serverTracing } from "./interceptors/tracing.js";
import { unaryValidation } from "./interceptors/validation.js";
import { commandAuth, parseStaticTokens } from "./interceptors/auth.js";
import { errorMapping } from "./interceptors/errors.js";
import { serverMetrics } from "./interceptors/metrics.js";
import { loadShedding } from "./interceptors/load-shedding.js";
import { collectDefaultMetrics, register } from "prom-client";
import { registerInConsul } from "./registration.js";
import { meshIdentity, type MeshIdentity } from "../platform/mesh/identity.js";
import { watchIntentions } from "../platform/mesh/intentions-watch.js";
import { meshAuthorizer as createMeshAuthorizer } from "./mesh/authorization.js";
import { startAdminServer, type AdminServer } from "./metrics-endpoint.js";

/** What a started service hands back to the host. */
export interface ServiceRuntime {
  /** Mounts the service's RPCs. */
  routes: (router: ConnectRouter) => void;
  /**
   * Throws while a dependency the service cannot work without is unreachable; the host then
   * reports NOT_SERVING (so Consul's check fails and clients move away) until it passes again.
   */
  healthCheck?: () => Promise<void>;
  /**
   * Answers plain HTTP requests on the service port that are not RPCs (a page and its assets):
   * true when answered, else the host answers 404. See `startServerHost`'s `httpFallback`.
   */
  httpFallback?: (request: http.IncomingMessage, response: http.ServerResponse) => boolean;
  /** Releases what `start` took (workers, pools), after the server has drained. */
  stop?: () => Promise<void>;
}

/** ServiceContext is what the host gives a service to start with. */
export interface ServiceContext {
  instanceId: string;
  log: Logger;
  consul: ConsulClient;
  /**
   * The service's own mesh identity when `MESH_IDENTITY=true`: hand it to the mesh clients the
   * service makes (`createMeshTransport({ ..., mesh })`) so they call as this service.
   */
  mesh?: MeshIdentity;
}

/** ServiceDefinition is what a service's entry point hands to `runService`. */
export interface ServiceDefinition<Config = void> {
  /** Consul service name, also the OpenTelemetry `service.name`; `SERVICE_NAME` overrides it. */
  name: string;
  version: string;
  /** Reads the service's own settings; problems are reported with the host's, all at once. */
  configure?: (env: EnvReader) => Config;
  /**
   * Queries that reveal personal data: with authentication on, they need the service's read
   * scope (`<service full name>:read`, or its `:write`). Other queries stay open. Default none.
   */
  personalDataQueries?: readonly DescMethod[];
  start: (config: Config, context: ServiceContext) => Promise<ServiceRuntime>;
}

/** How often a service's health check runs. */
const healthCheckIntervalMs = 2000;

/**
 * runService is the whole life of a service process: read and validate the environment, start
 * tracing, start the service, serve on one port, register in Consul with a gRPC check, keep the
 * health status in step with the service's dependencies, and on SIGTERM or SIGINT leave cleanly:
 * NOT_SERVING, deregister, drain in-flight calls, stop the service, flush spans, exit 0.
 *
 * Environment: `HOST` (default 127.0.0.1), `PORT` (default 0: any free port), `ADVERTISE_ADDRESS`
 * (default HOST), `INSTANCE_ID` (default name-uuid), `CONSUL_HTTP_ADDR` (default 127.0.0.1:8500;
 * `https://...` with `CONSUL_CACERT`, `CONSUL_CLIENT_CERT`, `CONSUL_CLIENT_KEY` as Consul's CLI
 * reads them: see platform/consul.ts), used for registration and by the mesh client's resolver,
 * `CONSUL_CHECK_INTERVAL` (default 5s), `CONSUL_REREGISTER_INTERVAL_MS` (default 10000),
 * `DRAIN_TIMEOUT_MS` (default 10000), `HANDSHAKE_TIMEOUT_MS` (default 10000: how long a new
 * connection may take to send its HTTP/2 preface or first HTTP/1.1 request head, TLS included),
 * `MAX_IN_FLIGHT_CALLS` (default 0: no limit; above it calls are refused with RESOURCE_EXHAUSTED
 * and `grpc-retry-pushback-ms: SHED_PUSHBACK_MS`, default 0, -1 for "do not retry"),
 * `OTEL_EXPORTER_OTLP_ENDPOINT` (default http://127.0.0.1:4317; span batching from `OTEL_BSP_*`,
 * resource detectors from `OTEL_NODE_RESOURCE_DETECTORS`, see platform/telemetry.ts),
 * `LOG_LEVEL` (default info). Responses: gzip when the caller accepts it and a message is at least
 * `COMPRESS_MIN_BYTES` (default 1024); `RESPONSE_COMPRESSION=false` turns that off.
 * Mesh: `MESH_IDENTITY=true` serves Consul's service mesh natively (registered with
 * `Connect: { Native: true }`): mutual TLS with the service's leaf certificate from Consul's CA
 * and every call decided by the intentions naming it (server/mesh/authorization.ts);
 * `MESH_READY_TIMEOUT_MS` (default 30000) bounds the wait for the leaf and intentions at start.
 * With the mesh on, /metrics is served on an admin port (`METRICS_PORT`, default a free one,
 * registered as `Meta.metrics_port`), never on the mesh port.
 * TLS: `TLS_CERT_FILE` and `TLS_KEY_FILE` (reloaded on change), `TLS_CA_FILE` with
 * `TLS_REQUIRE_CLIENT_CERT=true` for mutual TLS; Consul's check then uses TLS
 * (`CONSUL_CHECK_TLS_SKIP_VERIFY=true` for self-signed development certificates, and
 * `CONSUL_CHECK_TLS_SERVER_NAME`, default ADVERTISE_ADDRESS, the name the check verifies); an
 * agent with `enable_agent_tls_for_checks` presents its certificate (deploy/consul/checks-mtls.hcl).
 * Command RPCs (and the definition's `personalDataQueries`) need a bearer token when
 * `AUTH_TOKENS` (`name:token:scope scope,...`) or `AUTH_JWT_SECRET` (HS256; JWTs must carry
 * `exp`, checked with `AUTH_JWT_CLOCK_SKEW_S` of skew, default 30; `AUTH_JWT_ISSUER` and
 * `AUTH_JWT_AUDIENCE` are required of the token when set) is set; see interceptors/auth.ts.
 * Metrics (prom-client's default registry, process metrics included) are served at `GET /metrics`
 * on the service's port, or, with `METRICS_PORT` set, on that port alone (of `METRICS_HOST`,
 * default HOST; 0 picks a free one, logged); `METRICS_TOKEN` makes a scrape send
 * `authorization: Bearer <token>` wherever they are served. Default: open on the service port,
 * as Prometheus scraping on loopback expects.
 */
export async function runService<Config>(definition: ServiceDefinition<Config>): Promise<void> {
  const env = readEnv();
  const host = env.string("HOST", "127.0.0.1");
  const port = env.port("PORT", 0);
  const advertiseAddress = env.string("ADVERTISE_ADDRESS", host);
  const consulAddress = consulAddressFromEnv(env);
  const checkInterval = env.string("CONSUL_CHECK_INTERVAL", "5s");
  const drainTimeoutMs = env.int("DRAIN_TIMEOUT_MS", 10_000, { min: 0 });
  const handshakeTimeoutMs = env.int("HANDSHAKE_TIMEOUT_MS", defaultHandshakeTimeoutMs, { min: 1 });
  const reregisterIntervalMs = env.int("CONSUL_REREGISTER_INTERVAL_MS", 10_000, { min: 100 });
  const tlsCertFile = env.optionalString("TLS_CERT_FILE");
  const tlsKeyFile = env.optionalString("TLS_KEY_FILE");
  const tlsCaFile = env.optionalString("TLS_CA_FILE");
  const tlsRequireClientCert = env.string("TLS_REQUIRE_CLIENT_CERT", "false") === "true";
  const checkTlsSkipVerify = env.string("CONSUL_CHECK_TLS_SKIP_VERIFY", "false") === "true";
  const checkTlsServerName = env.string("CONSUL_CHECK_TLS_SERVER_NAME", advertiseAddress);
  const authTokens = env.optionalString("AUTH_TOKENS");
  const jwtSecret = env.optionalString("AUTH_JWT_SECRET");
  const jwtIssuer = env.optionalString("AUTH_JWT_ISSUER");
  const jwtAudience = env.optionalString("AUTH_JWT_AUDIENCE");
  const jwtClockToleranceSeconds = env.int("AUTH_JWT_CLOCK_SKEW_S", 30, { min: 0, max: 300 });
  const metricsPortText = env.optionalString("METRICS_PORT");
  const meshOn = env.string("MESH_IDENTITY", "false") === "true";
  // A mesh port answers nothing but grpc.health.v1 without a mesh certificate, which Prometheus
  // has not: with the mesh on, metrics go to an admin port of their own (a free one unless set).
  const metricsPort = metricsPortText === undefined ? (meshOn ? 0 : undefined) : env.port("METRICS_PORT", 0);
  const metricsHost = env.string("METRICS_HOST", host);
  const metricsToken = env.optionalString("METRICS_TOKEN");
  const maxInFlight = env.int("MAX_IN_FLIGHT_CALLS", 0, { min: 0 });
  const pushbackMs = env.int("SHED_PUSHBACK_MS", 0, { min: -1 });
  const responseCompression = env.string("RESPONSE_COMPRESSION", "true") !== "false";
  const compressMinBytes = env.int("COMPRESS_MIN_BYTES", 1024, { min: 0 });
  const meshReadyTimeoutMs = env.int("MESH_READY_TIMEOUT_MS", 30_000, { min: 1 });
  if (meshOn && (tlsCertFile || tlsKeyFile)) env.problem("MESH_IDENTITY=true takes the service's certificate from Consul's CA: unset TLS_CERT_FILE and TLS_KEY_FILE");
  const config = definition.configure?.(env) as Config;
  // Started already when the entry point imported its telemetry module first (it must, for pg
  // and ioredis to be instrumented); otherwise started here.
  const { identity, telemetry } = startServiceTelemetry(definition.name, definition.version);
  const instanceId = identity.instanceId;
  const log = createLogger(identity.name, { instance: instanceId });
  let auth: Interceptor | undefined;
  try {
    env.done();
    if (authTokens || jwtSecret) {
      auth = commandAuth({
        tokens: parseStaticTokens(authTokens),
        ...(jwtSecret ? { jwtSecret } : {}),
        ...(jwtIssuer ? { jwtIssuer } : {}),
        ...(jwtAudience ? { jwtAudience } : {}),
        jwtClockToleranceSeconds,
        personalDataQueries: definition.personalDataQueries ?? [],
        metrics: register,
      });
    }
  } catch (error) {
    log.fatal({ err: error }, "invalid configuration");
    process.exit(2);
  }

  collectDefaultMetrics({ register });
  const consul = createConsulClient(consulAddress);
  const mesh = meshOn ? await startMesh(consul, identity.name, meshReadyTimeoutMs, log) : undefined;
  const runtime = await definition.start(config, { instanceId, log, consul, ...(mesh ? { mesh: mesh.identity } : {}) });
  // One authorizer decides the calls (its interceptor) and what the host answers itself.
  const meshAuthorizer = mesh ? createMeshAuthorizer({ identity: mesh.identity, intentions: mesh.intentions, metrics: register, log }) : undefined;
  const server = await startServerHost({
    routes: runtime.routes,
    log,
    ...(runtime.httpFallback ? { httpFallback: runtime.httpFallback } : {}),
    host,
    port,
    handshakeTimeoutMs,
    compression: responseCompression,
    compressMinBytes,
    // Outermost first: the span and the metrics see every call, validation failures included.
    interceptors: [
      serverTracing(),
      serverMetrics(register),
      errorMapping(log),
      // Who may call, before any work is spent on the call (and before shedding, so a refused caller takes no slot).
      ...(meshAuthorizer ? [meshAuthorizer.interceptor] : []),
      // Shedding comes before any work (auth, validation, the handler) and after the metrics, which count what it refused.
      ...(maxInFlight > 0 ? [loadShedding({ maxInFlight, retryAfterMs: pushbackMs })] : []),
      serverDeadline(),
      ...(auth ? [auth] : []),
      unaryValidation(createValidateInterceptor()),
    ],
    // On the service port unless an admin port of their own is configured.
    ...(metricsPort === undefined ? { metrics: register, ...(metricsToken ? { metricsAccess: { token: metricsToken } } : {}) } : {}),
    ...(mesh ? { mesh: mesh.identity, meshAuthorizer } : {}),
    ...(tlsCertFile && tlsKeyFile
      ? { tls: { certFile: tlsCertFile, keyFile: tlsKeyFile, ...(tlsCaFile ? { caFile: tlsCaFile } : {}), requireClientCert: tlsRequireClientCert } }
      : {}),
  });

  let admin: AdminServer | undefined;
  if (metricsPort !== undefined) {
    admin = await startAdminServer(register, metricsHost, metricsPort, metricsToken ? { token: metricsToken } : {});
    log.info({ address: `${metricsHost}:${admin.port}` }, "serving /metrics on the admin port");
  }

  let stopping = false;
  const healthTimer = runtime.healthCheck && watchHealth(runtime.healthCheck, (healthy) => !stopping && server.health.setAll(healthy ? ServingStatus.SERVING : ServingStatus.NOT_SERVING), log);

  const registration = await registerInConsul(
    consul,
    {
      name: identity.name,
      id: instanceId,
      address: advertiseAddress,
      port: server.port,
      tags: ["grpc", "grpc-web", "connect"],
      meta: { version: definition.version, protocols: "grpc,grpc-web,connect", ...(admin ? { metrics_port: String(admin.port) } : {}) },
      checkInterval,
      // A mesh port is TLS with a leaf certificate that names no host (its identity is a SPIFFE
      // URI), so the agent's check cannot verify it by name: it connects with TLS, unverified,
      // and without a certificate reaches grpc.health.v1 and nothing else (docs/consul.md).
      checkUseTls: Boolean(mesh || (tlsCertFile && tlsKeyFile)),
      checkTlsSkipVerify: checkTlsSkipVerify || Boolean(mesh),
      connectNative: Boolean(mesh),
      checkTlsServerName,
    },
    { reregisterIntervalMs, onReregistered: () => log.warn("the Consul agent had forgotten this instance: registered again") },
  ).catch((error: unknown) => {
    const response = (error as { response?: { statusCode?: number; body?: unknown } }).response;
    const denied = response?.statusCode === 403;
    log.fatal(
      { error: String((error as Error)?.message ?? error), status: response?.statusCode, detail: typeof response?.body === "string" ? response.body : undefined, consul: `${consulAddress.host}:${consulAddress.port}` },
      denied
        ? "Consul refused the registration: set CONSUL_HTTP_TOKEN to a token allowed to register this service"
        : "could not register in Consul (is the agent at CONSUL_HTTP_ADDR running?)",
    );
    process.exit(1);
  });
  log.info({ address: `${server.host}:${server.port}`, services: server.serviceNames }, "serving and registered in Consul");

  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "shutting down: deregistering, then draining in-flight calls");
    if (healthTimer) clearInterval(healthTimer);
    server.health.setAll(ServingStatus.NOT_SERVING);
    await registration.deregister().catch((error: unknown) => log.error({ err: error }, "deregistration failed"));
    await server.drain(drainTimeoutMs);
    await admin?.close();
    await runtime.stop?.().catch((error: unknown) => log.error({ err: error }, "stopping the service failed"));
    mesh?.close();
    await telemetry.shutdown().catch((error: unknown) => log.warn({ err: error }, "span flush failed"));
    log.info("stopped");
    process.exit(0);
  };
  process.once("SIGTERM", () => void stop("SIGTERM"));
  process.once("SIGINT", () => void stop("SIGINT"));
}

/**
 * The service's mesh identity and the intentions that name it as destination, both read before
 * the service serves a call: a mesh port cannot start without its certificate, and serving
 * before the intentions are known would have to guess.
 */
async function startMesh(consul: ConsulClient, service: string, readyTimeoutMs: number, log: Logger) {
  const identity = meshIdentity(consul, { service });
  const intentions = watchIntentions(consul, {
    service,
    onProblems: (problems) => log.error({ problems }, "some intentions could not be compiled: what they would decide is denied"),
  });
  const timeout = AbortSignal.timeout(readyTimeoutMs);
  try {
    const [material] = await Promise.all([identity.ready(timeout), intentions.ready(timeout)]);
    log.info({ spiffeId: material.identity.uri, validBefore: material.validBefore.toISOString() }, "mesh identity and intentions read from Consul");
  } catch {
    const why = identity.lastError ?? intentions.lastError;
    log.fatal({ error: why?.message }, `could not read this service's mesh certificate and intentions from Consul within ${readyTimeoutMs} ms (is the agent reachable, Connect enabled, and the token allowed service:write and intentions:read?)`);
    process.exit(1);
  }
  return {
    identity,
    intentions,
    close() {
      identity.close();
      intentions.close();
    },
  };
}

function watchHealth(check: () => Promise<void>, report: (healthy: boolean) => void, log: Logger): NodeJS.Timeout {
  let healthy = true;
  let running = false;
  const timer = setInterval(() => {
    if (running) return;
    running = true;
    check()
      .then(
        () => {
          if (!healthy) log.info("dependencies reachable again: SERVING");
          healthy = true;
        },
        (error: unknown) => {
          if (healthy) log.error({ err: error }, "a required dependency is unreachable: NOT_SERVING");
          healthy = false;
        },
      )
      .finally(() => {
        running = false;
        report(healthy);
      });
  }, healthCheckIntervalMs);
  timer.unref();
  return timer;
}
