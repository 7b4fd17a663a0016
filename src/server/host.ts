import http from "node:http";
import http2 from "node:http2";
import net, { type AddressInfo } from "node:net";
import type { DescService } from "@bufbuild/protobuf";
import type { ConnectRouter, Interceptor } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { Registry } from "prom-client";
import { Health } from "../../gen/health/v1/health_pb.js";
import * as reflectionV1 from "../../gen/grpc/reflection/v1/reflection_pb.js";
import * as reflectionV1alpha from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { createHealthStatus, healthRoutes, ServingStatus, type HealthStatus } from "./health.js";
import { reflectionRoutes } from "./reflection.js";
import { recordRoutes } from "./route-recorder.js";
import { createGrpcStreamHandler, type GrpcStreamHandler } from "./grpc-stream-handler.js";
import { routeHttp2Streams } from "./http2-stream-routing.js";
import { readTlsFiles, watchTlsFiles, type TlsFiles } from "../platform/tls-files.js";

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
  /** Server interceptors, outermost first. */
  interceptors?: Interceptor[];
  /** Pending-connection queue length passed to listen(). Default 1024, as the seed asks. */
  backlog?: number;
  /** Serves `GET /metrics` (Prometheus text format) from this registry; default none. */
  metrics?: Registry;
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
   * sends GOAWAY so clients open no new streams, and lets in-flight calls finish. Calls still
   * running after `timeoutMs` (default 10 s) are cancelled and their connections destroyed.
   */
  drain(timeoutMs?: number): Promise<void>;
}

const fourMebibytes = 4 * 1024 * 1024;

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
  let leanGrpc: GrpcStreamHandler | undefined;
  const readMaxBytes = options.readMaxBytes ?? fourMebibytes;
  const writeMaxBytes = options.writeMaxBytes ?? fourMebibytes;
  const handler = connectNodeAdapter({
    grpc: true,
    grpcWeb: true,
    connect: true,
    readMaxBytes,
    writeMaxBytes,
    interceptors: options.interceptors,
    shutdownSignal: forceShutdown.signal,
    // Anything that is not an RPC: Prometheus' scrape, over HTTP/1.1 on the same port.
    fallback(request, untypedResponse) {
      // Both Node's HTTP/1.1 and HTTP/2 compatibility responses have writeHead and end.
      const response = untypedResponse as http.ServerResponse;
      if (options.metrics && request.method === "GET" && request.url?.split("?")[0] === "/metrics") {
        const registry = options.metrics;
        registry.metrics().then(
          (text) => {
            response.writeHead(200, { "content-type": registry.contentType });
            response.end(text);
          },
          (error: unknown) => {
            response.writeHead(500);
            response.end(String(error));
          },
        );
        return;
      }
      response.writeHead(404);
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
      if (options.leanGrpcPath !== false) leanGrpc = createGrpcStreamHandler({ methods, interceptors: options.interceptors ?? [], readMaxBytes, writeMaxBytes });
    },
  });
  if (!health) throw new Error("connect did not build the routes synchronously");
  const status: HealthStatus = health;

  const { server, h2Sessions, h1Server, stopTlsWatch } = options.tls ? createTlsServer(handler, options.tls, leanGrpc) : { ...createDualProtocolServer(handler, leanGrpc), stopTlsWatch: () => undefined };

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
      for (const session of h2Sessions) session.close(); // GOAWAY, then close when streams end
      const closeIdleHttp1 = setInterval(() => h1Server.closeIdleConnections(), 100);
      h1Server.closeIdleConnections();
      const timer = setTimeout(() => {
        forceShutdown.abort(new Error("server drain timed out"));
        for (const session of h2Sessions) session.destroy();
        h1Server.closeAllConnections();
      }, timeoutMs);
      await closed;
      clearTimeout(timer);
      clearInterval(closeIdleHttp1);
    })());

  return { host: listenHost, port, health: status, serviceNames, drain };
}

/**
 * One TCP port for both HTTP/2 without TLS (gRPC, and Connect or gRPC-Web from servers) and
 * HTTP/1.1 (Connect and gRPC-Web from browsers and curl). Node's `allowHTTP1` only works with TLS
 * (it rides on ALPN), so each connection is routed by its first bytes: an HTTP/2 client opens
 * with the preface "PRI * HTTP/2.0" (RFC 9113, section 3.4), an HTTP/1.1 client never does.
 */
function createDualProtocolServer(handler: ReturnType<typeof connectNodeAdapter>, leanGrpc: GrpcStreamHandler | undefined) {
  const h2Server = http2.createServer(handler);
  if (leanGrpc) routeHttp2Streams(h2Server, leanGrpc);
  const h1Server = http.createServer(handler);
  const h2Sessions = new Set<http2.ServerHttp2Session>();
  h2Server.on("session", (session) => {
    h2Sessions.add(session);
    session.once("close", () => h2Sessions.delete(session));
  });
  const server = net.createServer((socket) => {
    socket.once("readable", () => {
      const head: Buffer | null = socket.read();
      if (!head) return void socket.destroy();
      socket.unshift(head);
      (head.subarray(0, 4).toString("latin1") === "PRI " ? h2Server : h1Server).emit("connection", socket);
    });
    socket.on("error", () => socket.destroy());
  });
  return { server, h2Sessions, h1Server };
}

/**
 * With TLS, Node serves HTTP/2 and HTTP/1.1 on one port by itself (ALPN, `allowHTTP1`); the
 * certificate, key and CA are swapped in place when their files change.
 */
function createTlsServer(handler: ReturnType<typeof connectNodeAdapter>, tls: TlsFiles & { requireClientCert?: boolean }, leanGrpc: GrpcStreamHandler | undefined) {
  const material = readTlsFiles(tls);
  const server = http2.createSecureServer({
    ...material,
    allowHTTP1: true,
    requestCert: Boolean(tls.requireClientCert),
    rejectUnauthorized: Boolean(tls.requireClientCert),
  });
  server.on("request", handler);
  if (leanGrpc) routeHttp2Streams(server, leanGrpc);
  const h2Sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (session) => {
    h2Sessions.add(session);
    session.once("close", () => h2Sessions.delete(session));
  });
  const stopTlsWatch = watchTlsFiles(
    tls,
    (fresh) => server.setSecureContext({ ...fresh }),
    () => undefined, // a half-written file: keep serving the previous certificate; the next change retries
  );
  // HTTP/1.1 connections of a secure server have no http.Server of their own to close idle ones.
  const h1Server = { closeIdleConnections: () => undefined, closeAllConnections: () => undefined };
  return { server: server as unknown as net.Server, h2Sessions, h1Server, stopTlsWatch };
}

function uniqueServices(services: DescService[]): DescService[] {
  return [...new Map(services.map((service) => [service.typeName, service])).values()];
}
