import Consul from "consul";
import type { HostPort } from "./config.js";

export type ConsulClient = InstanceType<typeof Consul>;

/** The Consul agent's HTTP API address, from `CONSUL_HTTP_ADDR` as Consul's own CLI reads it. */
export const defaultConsulAddress = "127.0.0.1:8500";

/**
 * createConsulClient returns a client of the `consul` package for the agent at `address`, with
 * `CONSUL_HTTP_TOKEN` (when set) sent on every request.
 */
export function createConsulClient(address: HostPort, token = process.env.CONSUL_HTTP_TOKEN): ConsulClient {
  return new Consul({
    host: address.host,
    port: address.port,
    ...(token ? { defaults: { token } } : {}),
  });
}
