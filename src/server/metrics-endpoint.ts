import { timingSafeEqual } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import type { Registry } from "prom-client";

/** MetricsEndpointOptions say who may read `/metrics`. */
export interface MetricsEndpointOptions {
  /**
   * When set, a scrape must send `authorization: Bearer <token>` (Prometheus:
   * `authorization: { credentials_file: ... }` in the scrape config); others get 401. Default
   * none: open, as Prometheus scraping on loopback expects. Compared in constant time.
   */
  token?: string;
}

/**
 * serveMetrics answers one `GET /metrics` request from `registry` (Prometheus text format), or
 * 401 when `options.token` is set and the request does not carry it.
 */
export function serveMetrics(registry: Registry, request: http.IncomingMessage, response: http.ServerResponse, options: MetricsEndpointOptions = {}): void {
  if (options.token !== undefined && !bearerMatches(request.headers.authorization, options.token)) {
    response.writeHead(401, { "www-authenticate": 'Bearer realm="metrics"' });
    response.end();
    return;
  }
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
}

function bearerMatches(header: string | undefined, token: string): boolean {
  const presented = Buffer.from(/^Bearer\s+(\S+)$/i.exec(header ?? "")?.[1] ?? "");
  const expected = Buffer.from(token);
  return presented.length === expected.length && timingSafeEqual(presented, expected);
}

/** An HTTP/1.1 server that serves only `/metrics`, for a port apart from the service's. */
export interface AdminServer {
  readonly port: number;
  close(): Promise<void>;
}

/**
 * startAdminServer serves `GET /metrics` on `host:port` (0: a free port), apart from the service
 * port, so that a firewall or a NetworkPolicy can keep the metrics to the monitoring network
 * while callers reach the RPCs. Everything else is 404.
 */
export async function startAdminServer(registry: Registry, host: string, port: number, options: MetricsEndpointOptions = {}): Promise<AdminServer> {
  const server = http.createServer((request, response) => {
    if (request.method === "GET" && request.url?.split("?")[0] === "/metrics") return serveMetrics(registry, request, response, options);
    response.writeHead(404);
    response.end();
  });
  // A scrape is one short request: idle keep-alive connections must not hold a drain open.
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, resolve);
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
