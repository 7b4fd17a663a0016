import { readFileSync } from "node:fs";
import https from "node:https";
import Consul from "consul";
import type { EnvReader, HostPort } from "./config.js";

export type ConsulClient = InstanceType<typeof Consul>;

/** The Consul agent's HTTP API address, from `CONSUL_HTTP_ADDR` as Consul's own CLI reads it. */
export const defaultConsulAddress = "127.0.0.1:8500";

/** ConsulTls is how to reach an agent's HTTPS API: the files Consul's CLI names in its environment. */
export interface ConsulTls {
  /** CA bundle the agent's certificate must chain to (`CONSUL_CACERT`). Default: the system's roots. */
  caFile?: string;
  /** Client certificate and key, for an agent with `verify_incoming` (`CONSUL_CLIENT_CERT`, `CONSUL_CLIENT_KEY`). */
  certFile?: string;
  keyFile?: string;
  /** The name the agent's certificate is verified against (`CONSUL_TLS_SERVER_NAME`). Default: the host. */
  serverName?: string;
  /** Verify the agent's certificate (`CONSUL_HTTP_SSL_VERIFY`). Default true; false only for development. */
  verify?: boolean;
}

/** ConsulAddress is an agent's HTTP API: plain HTTP, or HTTPS when `tls` is given. */
export type ConsulAddress = HostPort & { tls?: ConsulTls };

/**
 * consulAddressFromEnv reads the agent's address the way Consul's CLI does: `CONSUL_HTTP_ADDR`
 * (default 127.0.0.1:8500; `https://` or `CONSUL_HTTP_SSL=true` means TLS), and for TLS
 * `CONSUL_CACERT`, `CONSUL_CLIENT_CERT` and `CONSUL_CLIENT_KEY`, `CONSUL_TLS_SERVER_NAME`,
 * `CONSUL_HTTP_SSL_VERIFY`. TLS files given for a plain-HTTP address are a configuration error,
 * not silently ignored: they say the agent was meant to be reached over TLS.
 */
export function consulAddressFromEnv(env: EnvReader): ConsulAddress {
  const address = env.hostPort("CONSUL_HTTP_ADDR", defaultConsulAddress);
  const secure = /^https:\/\//i.test(env.string("CONSUL_HTTP_ADDR", defaultConsulAddress)) || env.string("CONSUL_HTTP_SSL", "false") === "true";
  const tls: ConsulTls = {};
  const caFile = env.optionalString("CONSUL_CACERT");
  const certFile = env.optionalString("CONSUL_CLIENT_CERT");
  const keyFile = env.optionalString("CONSUL_CLIENT_KEY");
  const serverName = env.optionalString("CONSUL_TLS_SERVER_NAME");
  if (caFile) tls.caFile = caFile;
  if (certFile) tls.certFile = certFile;
  if (keyFile) tls.keyFile = keyFile;
  if (serverName) tls.serverName = serverName;
  if (env.string("CONSUL_HTTP_SSL_VERIFY", "true") === "false") tls.verify = false;
  if (!secure) {
    if (Object.keys(tls).length > 0) env.problem(`CONSUL_CACERT, CONSUL_CLIENT_CERT/KEY or CONSUL_TLS_SERVER_NAME are set, but CONSUL_HTTP_ADDR is not https:// (nor CONSUL_HTTP_SSL=true)`);
    return address;
  }
  if (Boolean(certFile) !== Boolean(keyFile)) env.problem("CONSUL_CLIENT_CERT and CONSUL_CLIENT_KEY go together: set both or neither");
  return { ...address, tls };
}

/**
 * createConsulClient returns a client of the `consul` package for the agent at `address`, with
 * `CONSUL_HTTP_TOKEN` (when set) sent on every request. With `address.tls` it speaks HTTPS over
 * one keep-alive agent carrying the CA and client certificate, read once here.
 */
export function createConsulClient(address: ConsulAddress, token = process.env.CONSUL_HTTP_TOKEN): ConsulClient {
  return new Consul({
    host: address.host,
    port: address.port,
    ...(address.tls ? { secure: true, agent: httpsAgent(address.tls) } : {}),
    ...(token ? { defaults: { token } } : {}),
  });
}

function httpsAgent(tls: ConsulTls): https.Agent {
  return new https.Agent({
    keepAlive: true,
    ...(tls.caFile ? { ca: readFileSync(tls.caFile) } : {}),
    ...(tls.certFile && tls.keyFile ? { cert: readFileSync(tls.certFile), key: readFileSync(tls.keyFile) } : {}),
    ...(tls.serverName ? { servername: tls.serverName } : {}),
    rejectUnauthorized: tls.verify ?? true,
  });
}
