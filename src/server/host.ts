import http from "node:http";
import http2 from "node:http2";
import net, { type AddressInfo } from "node:net";
import type { TLSSocket } from "node:tls";
import type { DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter, type Interceptor } from "@connectrpc/connect";
// The type of the request listener the servers below take (createNodeAdapter's is one).
import type { connectNodeAdapter } from "@connectrpc/connect-node";
import type { Registry } from "prom-client";
import { Health } from "../../gen/health/v1/health_pb.js";
import * as reflectionV1 from "../../gen/grpc/reflection/v1/reflection_pb.js";
import * as reflectionV1alpha from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { createHealthStatus, healthRoutes, ServingStatus, type HealthStatus } from "./health.js";
import { reflectionRoutes } from "./reflection.js";
import { serveMetrics, type MetricsEndpointOptions } from "./metrics-endpoint.js";
import { recordRoutes } from "./route-recorder.js";
import { createGrpcStreamHandler, type GrpcStreamHandler } from "./grpc-stream-handler.js";
import { routeHttp2Streams } from "./http2-stream-routing.js";
import { answerTrailersOnly, answerUnknownMethod } from "./unknown-method.js";
import { skipEndedCalls } from "./skip-ended-calls.js";
import { createNodeAdapter, type HostLog } from "./node-adapter.js";
import { readTlsFiles, watchTlsFiles, type TlsFiles } from "../platform/tls-files.js";
import type { MeshIdentity, MeshMaterial } from "../platform/mesh/identity.js";
import { connectionContextValues, connectionOf } from "./call-connection.js";
import type { MeshAuthorizer } from "./mesh/authorization.js";
import { meshPeerOf } from "./mesh/peer.js";
import { fuseObservers } from "./interceptors/observe-calls.js";
import { keepContextInStreams, recordStreamContext } from "./stream-context.js";
import { createConnectionTracker, defaultHandshakeTimeoutMs, type ConnectionTracker } from "./connection-tracker.js";

/** ServerHostOptions configure `startServerHost`. */
export interface ServerHostOptions {
  /** Mounts the application's services, as connect's `(router) => void`. */
  routes: (router: ConnectRouter) => void;
  /** Address to listen on. Default "127.0.0.1": everything stays on loopback unless asked. */
  host?: string;
  /** Port to listen on; 0 (the default) lets the kernel pick a free one. */
  port?: number;
  /** Largest request message accepted, in bytes. Default 4 MiB, as gRPC's own default. */
  readMaxBytes?: number;
  /** Largest response message sent, in bytes. Default 4 MiB. */
  writeMaxBytes?: number;
  /**
   * Server interceptors, outermost first. The body of a streaming handler (and each
   * interceptor's stream wrapper) runs in the async context the interceptors set up around it:
   * the inherited deadline and the server span cover every message, not only the first call.
   */
  interceptors?: Interceptor[];
  /** Pending-connection queue length passed to listen(). Default 1024, as the seed asks. */
  backlog?: number;
  /**
   * How long a new connection may take to start, in milliseconds: the TLS handshake and the
   * HTTP/2 preface, or the head of its first HTTP/1.1 request. One that has not started by then
   * is closed (a slow-loris guard). Default 10 000.
   */
  handshakeTimeoutMs?: number;
  /**
   * Answers the plain HTTP requests that are not RPCs (nor `/metrics`), such as a browser page's
   * assets: return true when the request was answered; otherwise the host answers 404. Default
   * none (every such request is a 404).
   */
  httpFallback?: (request: http.IncomingMessage, response: http.ServerResponse) => boolean;
  /** Serves `GET /metrics` (Prometheus text format) from this registry; default none. */
  metrics?: Registry;
  /** Who may read `/metrics` (a bearer token); default anyone. See metrics-endpoint.ts. */
  metricsAccess?: MetricsEndpointOptions;
  /**
   * Serve TLS with these files (reloaded when they change). With `caFile` and
   * `requireClientCert`, mutual TLS: a client without a certificate signed by that CA is refused
   * during the handshake. HTTP/1.1 is then negotiated by ALPN.
   */
  tls?: TlsFiles & { requireClientCert?: boolean };
  /**
   * Serve plain gRPC calls (unary and server streaming, protobuf, uncompressed requests, over
   * HTTP/2) on the lean path of grpc-stream-handler.ts rather than through connect-node: same
   * implementations, interceptors and answers, a sixth of the CPU per call (docs/benchmarks.md). Default true;
   * false sends every call through connect-node (kept for comparison and as an escape hatch).
   */
  leanGrpcPath?: boolean;
  /**
   * Compress response messages of at least `compressMinBytes` bytes when the caller accepts it
   * (gRPC's `grpc-accept-encoding`, Connect's `accept-encoding`): gzip, or brotli where the
   * caller prefers it (connect-node's two). Default true. false: no response is compressed;
   * compressed requests are still accepted.
   */
  compression?: boolean;
  /**
   * The smallest response message compressed, in bytes. Default 1024, connect-node's own default:
   * compressing smaller messages costs more CPU than it saves, and keeps tiny calls free of it.
   */
  compressMinBytes?: number;
  /**
   * Where the host reports what fails outside every handler, such as an answer it could not
   * write: at error level, or at debug level when the client had gone away (a reset stream, a
   * closed connection), which is no fault of the server. A pino Logger fits (runService passes
   * its own). Default: errors to stderr (console.error, as connect-node prints them), the rest
   * nowhere.
   */
  log?: HostLog;
  /**
   * Serve Consul's service mesh with this identity (platform/mesh/identity.ts): TLS with the
   * service's leaf certificate, client certificates asked for and verified against every current
   * CA root, both swapped in place when the agent renews the leaf or rotates the roots. HTTP/2
   * only: ALPN h2, or no ALPN at all (Consul's built-in proxy dials that way); a client offering
   * only HTTP/1.1 is refused. Who may call what is then the `meshAuthorization` interceptor's
   * decision (mesh/authorization.ts), which runService puts in the chain. Excludes `tls`.
   */
  mesh?: MeshIdentity;
  /**
   * With `mesh`: the authorizer whose interceptor decides the calls, to decide as well what the
   * host answers itself (a method it does not serve), so a caller the intentions deny gets
   * PERMISSION_DENIED there too, not UNIMPLEMENTED. Without it, only the caller's certificate is
   * checked there.
   */
  meshAuthorizer?: MeshAuthorizer;
}

/** ServerHost is a running server: one port serving gRPC, gRPC-Web and Connect. */
export interface ServerHost {
  readonly host: string;
  readonly port: number;
  /** Serving status per service, read by Consul's gRPC check and by clients. */
  readonly health: HealthStatus;
  /** The application's service names (health and reflection excluded). */
  readonly serviceNames: readonly string[];
  /**
   * drain stops the server gracefully: it reports NOT_SERVING, stops accepting connections,
   * closes the connections that carry no call (not yet started, or idle HTTP/1.1), sends GOAWAY
   * so clients open no new streams, and lets in-flight calls finish. Calls still running after
   * `timeoutMs` (default 10 s) are cancelled and every connection left is destroyed.
   */
  drain(timeoutMs?: number): Promise<void>;
}

const fourMebibytes = 4 * 1024 * 1024;
/** connect's defaultCompressMinBytes (protocol/limit-io.ts), which it does not export. */
const defaultCompressMinBytes = 1024;

const stderrLog: HostLog = { debug: () => undefined, error: (fields, message) => console.error(message, fields) };

/**
 * startServerHost serves `routes` with grpc.health.v1 and server reflection (v1 and v1alpha)
 * mounted beside them, on one HTTP/2 port speaking gRPC, gRPC-Web and Connect.
 *
 * ```ts
 * const host = await startServerHost({ routes: (router) => router.service(EchoService, impl) });
 * process.once("SIGTERM", () => void host.drain());
 * ```
 */
export async function startServerHost(options: ServerHostOptions): Promise<ServerHost> {
  const listenHost = options.host ?? "127.0.0.1";
  // Aborted when a drain runs out of time: connect then cancels every handler still running.
  const forceShutdown = new AbortController();
  // Aborted when a drain starts: ends long-lived streams (health Watch) that would never end.
  const draining = new AbortController();

  let health: HealthStatus | undefined;
  let serviceNames: string[] = [];
  // Every service mounted (health and reflection too): what an unknown method's answer names.
  let servedServices: ReadonlySet<string> = new Set();
  let leanGrpc: GrpcStreamHandler | undefined;
  const readMaxBytes = options.readMaxBytes ?? fourMebibytes;
  const writeMaxBytes = options.writeMaxBytes ?? fourMebibytes;
  const compressMinBytes = options.compression === false ? undefined : (options.compressMinBytes ?? defaultCompressMinBytes);
  // Streaming handlers' bodies keep the deadline and trace context the interceptors set up
  // (stream-context.ts): connect-node's writer steps into it per message, the lean path once.
  // Adjacent observing interceptors (tracing, metrics, error mapping, deadline) run as one layer.
  const given = fuseObservers(options.interceptors ?? []);
  const interceptors = [...keepContextInStreams(given), skipEndedCalls];
  const leanInterceptors = recordStreamContext(given);
  const handler = createNodeAdapter({
    grpc: true,
    grpcWeb: true,
    connect: true,
    readMaxBytes,
    writeMaxBytes,
    compressMinBytes,
    interceptors,
    shutdownSignal: forceShutdown.signal,
    contextValues: connectionContextValues,
    log: options.log ?? stderrLog,
    // Anything that is not an RPC: Prometheus' scrape, over HTTP/1.1 on the same port, and
    // gRPC calls of methods not served (UNIMPLEMENTED, as gRPC servers answer them).
    fallback(request, response) {
      const meshRefusal = (): ConnectError | undefined => {
        const connection = connectionOf(request);
        const authorizer = options.meshAuthorizer;
        if (authorizer) {
          const header = (name: string) => [request.headers[name] ?? []].flat().join(", ") || undefined;
          return authorizer.refusal({ connection, path: request.url?.split("?")[0] ?? "", method: request.method ?? "POST", header });
        }
        const peer = meshPeerOf(connection, options.mesh?.current()?.trustDomain ?? "");
        return peer.id ? undefined : new ConnectError(peer.detail, Code.Unauthenticated);
      };
      if (options.metrics && request.method === "GET" && request.url?.split("?")[0] === "/metrics") {
        // Both Node's HTTP/1.1 and HTTP/2 compatibility responses have writeHead and end.
        serveMetrics(options.metrics, request as http.IncomingMessage, response as http.ServerResponse, options.metricsAccess);
        return;
      }
      // On a mesh port, a caller without a mesh certificate, or one the intentions deny, learns
      // nothing, not even which methods exist: the answer a method that exists would give it.
      const refused = options.mesh ? meshRefusal() : undefined;
      if (refused) {
        if (answerTrailersOnly(request, response, refused.code, refused.rawMessage)) return;
      } else if (answerUnknownMethod(request, response, servedServices)) return;
      if (options.httpFallback?.(request as http.IncomingMessage, response as http.ServerResponse)) return;
      (response as http.ServerResponse).writeHead(404);
      response.end();
    },
    routes(connectRouter) {
      const { router, methods } = recordRoutes(connectRouter);
      options.routes(router);
      const appServices = uniqueServices(router.handlers.map((h) => h.service));
      serviceNames = appServices.map((service) => service.typeName);
      health = createHealthStatus(serviceNames);
      healthRoutes(health, draining.signal)(router);
      reflectionRoutes([...appServices, Health, reflectionV1.ServerReflection, reflectionV1alpha.ServerReflection])(router);
      servedServices = new Set(router.handlers.map((h) => h.service.typeName));
      if (options.leanGrpcPath !== false) leanGrpc = createGrpcStreamHandler({ methods, interceptors: leanInterceptors, readMaxBytes, writeMaxBytes, compressMinBytes });
    },
  });
  if (!health) throw new Error("connect did not build the routes synchronously");
  const status: HealthStatus = health;

  // Every accepted connection, so that a drain and its forced end reach each one of them.
  const connections = createConnectionTracker({ handshakeTimeoutMs: options.handshakeTimeoutMs ?? defaultHandshakeTimeoutMs });
  if (options.mesh && options.tls) throw new Error("startServerHost: give `mesh` or `tls`, not both");
  const { server, h2Sessions, h1Server, stopHttp1, stopTlsWatch } = options.mesh
    ? createMeshServer(handler, await options.mesh.ready(), options.mesh, connections, leanGrpc)
    : options.tls
      ? createTlsServer(handler, options.tls, connections, leanGrpc)
      : { ...createDualProtocolServer(handler, connections, leanGrpc), stopTlsWatch: () => undefined };

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host: listenHost, port: options.port ?? 0, backlog: options.backlog ?? 1024 }, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;

  let drained: Promise<void> | undefined;
  const drain = (timeoutMs = 10_000): Promise<void> =>
    (drained ??= (async () => {
      status.setAll(ServingStatus.NOT_SERVING);
      draining.abort();
      // net.Server.close() calls back once every connection, HTTP/2 or HTTP/1.1, has ended.
      stopTlsWatch();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      connections.closeUnstarted();
      for (const session of h2Sessions) session.close(); // GOAWAY, then close when streams end
      const closeIdleHttp1 = setInterval(() => h1Server.closeIdleConnections(), 100);
      h1Server.closeIdleConnections();
      const timer = setTimeout(() => {
        forceShutdown.abort(new Error("server drain timed out"));
        for (const session of h2Sessions) session.destroy();
        connections.destroyAll();
      }, timeoutMs);
      await closed;
      clearTimeout(timer);
      clearInterval(closeIdleHttp1);
      stopHttp1();
    })());

  return { host: listenHost, port, health: status, serviceNames, drain };
}

/**
 * One TCP port for both HTTP/2 without TLS (gRPC, and Connect or gRPC-Web from servers) and
 * HTTP/1.1 (Connect and gRPC-Web from browsers and curl). Node's `allowHTTP1` only works with TLS
 * (it rides on ALPN), so each connection is routed by its first bytes: an HTTP/2 client opens
 * with the preface "PRI * HTTP/2.0" (RFC 9113, section 3.4), an HTTP/1.1 client never does.
 */
function createDualProtocolServer(handler: ReturnType<typeof connectNodeAdapter>, connections: ConnectionTracker, leanGrpc: GrpcStreamHandler | undefined) {
  const h2Server = http2.createServer(handler);
  if (leanGrpc) routeHttp2Streams(h2Server, leanGrpc);
  const h1Server = http.createServer(handler);
  // http.Server starts tracking its connections (which closeIdleConnections needs) on its
  // 'listening' event. This one never listens: the port's server hands it sockets. Without this,
  // a drain could not close an idle keep-alive connection and waited out the keep-alive timeout.
  // The tracking's check timer is unref'd, and h1Server.close() at the end of a drain clears it.
  h1Server.emit("listening");
  const h2Sessions = trackSessions(h2Server, connections);
  h1Server.on("request", (request: http.IncomingMessage) => connections.started(request.socket));
  const server = net.createServer((socket) => {
    connections.accept(socket);
    socket.once("readable", () => {
      const head: Buffer | null = socket.read();
      if (!head) return void socket.destroy();
      socket.unshift(head);
      (head.subarray(0, 4).toString("latin1") === "PRI " ? h2Server : h1Server).emit("connection", socket);
    });
    socket.on("error", () => socket.destroy());
  });
  // Clears the connection tracking started above: the server itself never listened.
  const stopHttp1 = () => void h1Server.close();
  return { server, h2Sessions, h1Server, stopHttp1 };
}

/**
 * With TLS, Node serves HTTP/2 and HTTP/1.1 on one port by itself (ALPN, `allowHTTP1`); the
 * certificate, key and CA are swapped in place when their files change.
 */
function createTlsServer(
  handler: ReturnType<typeof connectNodeAdapter>,
  tls: TlsFiles & { requireClientCert?: boolean },
  connections: ConnectionTracker,
  leanGrpc: GrpcStreamHandler | undefined,
) {
  const material = readTlsFiles(tls);
  const server = http2.createSecureServer({
    ...material,
    allowHTTP1: true,
    requestCert: Boolean(tls.requireClientCert),
    rejectUnauthorized: Boolean(tls.requireClientCert),
  });
  server.on("request", handler);
  if (leanGrpc) routeHttp2Streams(server, leanGrpc);
  // The TCP connection, before its TLS handshake: tracked from the first moment, like without TLS.
  server.on("connection", (socket: net.Socket) => connections.accept(socket));
  server.on("request", (request: http2.Http2ServerRequest | http.IncomingMessage) => {
    if (request.httpVersionMajor === 1) connections.started(request.socket as net.Socket);
  });
  const h2Sessions = trackSessions(server, connections);
  const stopTlsWatch = watchTlsFiles(
    tls,
    (fresh) => server.setSecureContext({ ...fresh }),
    () => undefined, // a half-written file: keep serving the previous certificate; the next change retries
  );
  // With allowHTTP1 the secure server tracks its HTTP/1.1 connections as an http.Server does
  // (Node's typings omit it): closeIdleConnections closes those between requests.
  const h1Server = server as unknown as Pick<http.Server, "closeIdleConnections">;
  // The secure server listened itself: closing it is the drain's own server.close().
  const stopHttp1 = () => undefined;
  return { server: server as unknown as net.Server, h2Sessions, h1Server, stopHttp1, stopTlsWatch };
}

/**
 * Mutual TLS with the mesh's material: the leaf and every root, swapped in place on change.
 * The handshake asks for a client certificate but lets one without through (Consul's health
 * check has no leaf); the authorization interceptor refuses such callers everything but
 * grpc.health.v1. A client that offers no ALPN is served as HTTP/2 with prior knowledge, as
 * Consul's built-in proxy expects; Node hands such a socket to 'unknownProtocol', and it is given
 * back to the server's own HTTP/2 connection handler marked as h2.
 */
function createMeshServer(
  handler: ReturnType<typeof connectNodeAdapter>,
  material: MeshMaterial,
  mesh: MeshIdentity,
  connections: ConnectionTracker,
  leanGrpc: GrpcStreamHandler | undefined,
) {
  const context = (m: MeshMaterial) => ({ cert: m.certPem, key: m.keyPem, ca: m.caPems });
  const server = http2.createSecureServer({
    ...context(material),
    requestCert: true,
    rejectUnauthorized: false,
    allowHTTP1: false,
    ALPNProtocols: ["h2"],
    minVersion: "TLSv1.2",
  });
  server.on("request", handler);
  if (leanGrpc) routeHttp2Streams(server, leanGrpc);
  server.on("connection", (socket: net.Socket) => connections.accept(socket));
  server.on("unknownProtocol", (socket: TLSSocket) => {
    if (socket.alpnProtocol !== false) return void socket.destroy(); // offered something else (HTTP/1.1): refused
    (socket as { alpnProtocol: string | false }).alpnProtocol = "h2";
    server.emit("secureConnection", socket);
  });
  const h2Sessions = trackSessions(server, connections);
  const stopTlsWatch = mesh.subscribe((fresh) => server.setSecureContext(context(fresh)));
  const h1Server = { closeIdleConnections: () => undefined };
  return { server: server as unknown as net.Server, h2Sessions, h1Server, stopHttp1: () => undefined, stopTlsWatch };
}

/** The server's open HTTP/2 sessions; each counts as started once the client's preface and SETTINGS arrived. */
function trackSessions(server: http2.Http2Server | http2.Http2SecureServer, connections: ConnectionTracker): Set<http2.ServerHttp2Session> {
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (session: http2.ServerHttp2Session) => {
    sessions.add(session);
    const socket = session.socket as net.Socket;
    session.once("remoteSettings", () => connections.started(socket));
    session.once("close", () => sessions.delete(session));
  });
  return sessions;
}

function uniqueServices(services: DescService[]): DescService[] {
  return [...new Map(services.map((service) => [service.typeName, service])).values()];
}
