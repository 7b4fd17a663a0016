import type { HostPort } from "../platform/config.js";

/** ConsulTarget is what a `consul:` channel target asks for. */
export interface ConsulTarget {
  /** The Consul agent to ask; undefined: the one `registerConsulResolver` was given. */
  agent: HostPort | undefined;
  /** Consul service name. */
  service: string;
  /** Only instances carrying every one of these tags (`?tag=a&tag=b`). */
  tags: string[];
  /** Datacenter (`?dc=`); undefined: the agent's own. */
  dc: string | undefined;
  /** Sort by round-trip time from this node (`?near=_agent`); undefined: Consul's order. */
  near: string | undefined;
  /**
   * Discover through Consul's mesh view (`?mesh=true`: `/v1/health/connect/<service>`, native
   * services and sidecar proxies), for channels with `meshChannelCredentials`. Default false.
   */
  mesh: boolean;
}

/** ConsulTargetError: a `consul:` target that cannot be used, with the reason. */
export class ConsulTargetError extends Error {
  override name = "ConsulTargetError";
}

/** What Consul accepts as a service name (letters, digits, dashes; underscores and dots too). */
const serviceNamePattern = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const knownParameters = new Set(["tag", "dc", "near", "mesh"]);

/**
 * parseConsulTarget reads a target as grpc-js splits it (`authority`, and `path` with the query
 * still in it): `consul:///orders`, or `consul://127.0.0.1:8500/orders?tag=v2&dc=dc1&near=_agent&mesh=true`.
 * Throws ConsulTargetError naming what is wrong: a missing or malformed service name, an agent
 * address without a valid port, an unknown query parameter.
 */
export function parseConsulTarget(authority: string | undefined, path: string): ConsulTarget {
  const queryAt = path.indexOf("?");
  const service = decodeURIComponent(queryAt < 0 ? path : path.slice(0, queryAt)).replace(/^\/+/, "");
  const target = `consul://${authority ?? ""}/${path}`;
  if (!service) throw new ConsulTargetError(`${target}: no service name (write consul:///<service> or consul://<agent host:port>/<service>)`);
  if (!serviceNamePattern.test(service)) throw new ConsulTargetError(`${target}: "${service}" is not a Consul service name`);
  const query = new URLSearchParams(queryAt < 0 ? "" : path.slice(queryAt + 1));
  for (const name of query.keys()) {
    if (!knownParameters.has(name)) throw new ConsulTargetError(`${target}: unknown parameter "${name}" (known: tag, dc, near, mesh)`);
  }
  const single = (name: string): string | undefined => {
    const values = query.getAll(name);
    if (values.length > 1) throw new ConsulTargetError(`${target}: "${name}" given ${values.length} times`);
    if (values[0] === "") throw new ConsulTargetError(`${target}: "${name}" is empty`);
    return values[0];
  };
  const tags = query.getAll("tag");
  if (tags.some((tag) => tag === "")) throw new ConsulTargetError(`${target}: an empty tag`);
  const mesh = single("mesh");
  if (mesh !== undefined && mesh !== "true" && mesh !== "false") throw new ConsulTargetError(`${target}: "mesh" is true or false, not "${mesh}"`);
  return { agent: authority ? parseAgent(authority, target) : undefined, service, tags, dc: single("dc"), near: single("near"), mesh: mesh === "true" };
}

function parseAgent(authority: string, target: string): HostPort {
  // host:port, or [ipv6]:port.
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(authority);
  const port = Number(match?.[3]);
  if (!match || !(port >= 1 && port <= 65_535)) {
    throw new ConsulTargetError(`${target}: the agent "${authority}" is not host:port (for example consul://127.0.0.1:8500/orders)`);
  }
  return { host: match[1] ?? match[2]!, port };
}
