import http from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { createConsulClient, type ConsulClient } from "../../src/platform/consul.js";
import { consulAddress } from "./infra.js";

/** What the proxy does with a request for the paths it intercepts. */
export type ProxyMode = "pass" | "500" | "hang";

/** A proxy in front of a Consul agent that can break some of its endpoints on demand. */
export interface ConsulProxy {
  readonly address: string;
  readonly client: ConsulClient;
  /** What the intercepted paths get; the others always pass. */
  mode: ProxyMode;
  close(): Promise<void>;
}

/**
 * startConsulProxy forwards every request to the agent (default the shared one), but requests
 * whose path starts with `intercept` get what `mode` says: passed on, an HTTP 500, or no answer at
 * all (the connection stays open). For tests of what a client does when one Consul endpoint fails
 * while the others work.
 */
export async function startConsulProxy(intercept: string, upstream = consulAddress): Promise<ConsulProxy> {
  const sockets = new Set<Socket>();
  const proxy: { mode: ProxyMode } = { mode: "pass" };
  const server = http.createServer((request, response) => {
    if (request.url?.startsWith(intercept) && proxy.mode !== "pass") {
      if (proxy.mode === "500") {
        response.writeHead(500, { "content-type": "text/plain" });
        response.end("injected failure");
      }
      return; // "hang": never answer
    }
    const forwarded = http.request({ host: upstream.host, port: upstream.port, path: request.url, method: request.method, headers: request.headers }, (answer) => {
      response.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(response);
    });
    forwarded.on("error", () => response.destroy());
    request.pipe(forwarded);
  });
  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    address: `127.0.0.1:${port}`,
    client: createConsulClient({ host: "127.0.0.1", port }),
    get mode() {
      return proxy.mode;
    },
    set mode(mode: ProxyMode) {
      proxy.mode = mode;
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
