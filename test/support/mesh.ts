import http2 from "node:http2";
import { connect, type ConnectionOptions } from "node:tls";
import { rawRequest, type RawAnswer } from "./raw-grpc.js";
import { consulAddress } from "./infra.js";

/** The shared agent's HTTP API, or another agent's `host:port`. */
const api = (agent = `${consulAddress.host}:${consulAddress.port}`) => `http://${agent}/v1`;

/** consulRequest sends one HTTP API request (with a token, when given) and fails on any non-2xx answer. */
export async function consulRequest(method: string, path: string, body?: unknown, { agent, token }: { agent?: string; token?: string } = {}): Promise<unknown> {
  const response = await fetch(`${api(agent)}${path}`, {
    method,
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    ...(token ? { headers: { "x-consul-token": token } } : {}),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path}: HTTP ${response.status} ${text}`);
  return text ? (JSON.parse(text) as unknown) : undefined;
}

/** Writes a service-intentions config entry (replacing any other for that destination). */
export function writeIntentions(destination: string, sources: unknown[], options?: { agent?: string; token?: string }): Promise<unknown> {
  return consulRequest("PUT", "/config", { Kind: "service-intentions", Name: destination, Sources: sources }, options);
}

export function deleteIntentions(destination: string, options?: { agent?: string; token?: string }): Promise<unknown> {
  return consulRequest("DELETE", `/config/service-intentions/${destination}`, undefined, options);
}

/** A service's leaf certificate and the CA roots, as the agent issues them. */
export async function leafOf(service: string, options?: { agent?: string; token?: string }): Promise<{ cert: string; key: string; ca: string[] }> {
  const leaf = (await consulRequest("GET", `/agent/connect/ca/leaf/${service}`, undefined, options)) as { CertPEM: string; PrivateKeyPEM: string };
  const roots = (await consulRequest("GET", "/agent/connect/ca/roots", undefined, options)) as { Roots: { RootCert: string }[] };
  return { cert: leaf.CertPEM, key: leaf.PrivateKeyPEM, ca: roots.Roots.map((root) => root.RootCert) };
}

/**
 * rawTlsCall makes one gRPC call over its own TLS connection with exactly the TLS options given
 * (client certificate or none, ALPN offered or none), below any gRPC library: it resolves with
 * the answer, or rejects with the connection's error (a refused handshake).
 */
export async function rawTlsCall(port: number, path: string, body: Buffer, tls: ConnectionOptions): Promise<RawAnswer> {
  // Our own TLS socket: http2.connect would always offer ALPN h2 itself.
  const session = http2.connect(`https://127.0.0.1:${port}`, {
    createConnection: () => connect({ host: "127.0.0.1", port, checkServerIdentity: () => undefined, ...tls }),
  });
  try {
    // A refused handshake fails the session before the request: whichever comes first rejects.
    return await Promise.race([rawRequest(session, path, body), new Promise<never>((_, reject) => session.once("error", reject))]);
  } finally {
    session.destroy();
  }
}
