import type { ConsulClient } from "../../../platform/consul.js";

/** A health check as Consul's health API returns it (the fields read here). */
export interface ConsulCheck {
  CheckID: string;
  Status: string;
  Output?: string;
  ServiceID?: string;
}

/** One entry of `/v1/health/service/<name>` (the fields read here). */
export interface ConsulHealthEntry {
  Node?: { Address?: string };
  Service: { ID: string; Address?: string; Port: number; Meta?: Record<string, string> | null };
  Checks: ConsulCheck[];
}

export type InstanceHealthName = "passing" | "warning" | "critical" | "draining";

/** One instance as the dashboard shows it. */
export interface InstanceRecord {
  id: string;
  address: string;
  port: number;
  health: InstanceHealthName;
  note: string;
  version: string;
}

export interface ServiceRecord {
  name: string;
  instances: InstanceRecord[];
}

/**
 * instanceHealth reads an instance's state from its checks (the node's and its own), as Consul
 * decides whether it is in the passing set: draining when Consul's maintenance mode is on for
 * the instance or its node (`consul maint -enable -service <id>`: out of the passing set, still
 * serving what it has); otherwise the worst check: critical, then warning, else passing.
 */
export function instanceHealth(checks: readonly ConsulCheck[]): { health: InstanceHealthName; note: string } {
  const failing = checks.filter((check) => check.Status !== "passing");
  const note = failing.map((check) => `${check.CheckID}: ${(check.Output ?? "").trim() || check.Status}`).join("; ");
  if (checks.some((check) => check.CheckID === "_node_maintenance" || check.CheckID.startsWith("_service_maintenance:"))) return { health: "draining", note };
  if (failing.some((check) => check.Status === "critical")) return { health: "critical", note };
  if (failing.length > 0) return { health: "warning", note };
  return { health: "passing", note };
}

/** The instances of one service from its health entries, ordered by id. */
export function instancesOf(entries: readonly ConsulHealthEntry[]): InstanceRecord[] {
  return entries
    .map((entry) => ({
      id: entry.Service.ID,
      address: entry.Service.Address || entry.Node?.Address || "",
      port: entry.Service.Port,
      ...instanceHealth(entry.Checks),
      version: entry.Service.Meta?.version ?? "",
    }))
    .sort((a, b) => a.id.localeCompare(b.id));
}

/**
 * consulGet sends one GET to the Consul HTTP API through the `consul` package's request path
 * (its `_get`, as platform/consul-blocking.ts does), so the client's address, TLS and ACL token
 * apply; the package has no method for the Connect and discovery-chain endpoints.
 */
export async function consulGet<T>(consul: ConsulClient, path: string, query: Record<string, string> = {}, timeoutMs = 2000): Promise<T> {
  const client = consul as unknown as {
    _get: (req: unknown, middleware: unknown) => Promise<T>;
    _defaults?: { token?: string };
  };
  const token = client._defaults?.token;
  return client._get(
    { name: `dashboard ${path}`, path, query, headers: token ? { "x-consul-token": token } : {}, timeout: timeoutMs },
    (call: { err?: Error; res: { body: unknown } }, next: (stop: false, error?: Error, value?: unknown) => void) =>
      call.err ? next(false, call.err) : next(false, undefined, call.res.body),
  );
}

/**
 * readServices lists every service in the catalog (but Consul itself) with its instances and
 * their health: one catalog query, then one health query per service, all in parallel, each
 * bounded by `timeoutMs`. Throws when Consul cannot be read.
 */
export async function readServices(consul: ConsulClient, timeoutMs = 2000): Promise<ServiceRecord[]> {
  const catalog = await consulGet<Record<string, string[]>>(consul, "/catalog/services", {}, timeoutMs);
  const names = Object.keys(catalog)
    .filter((name) => name !== "consul")
    .sort();
  return Promise.all(
    names.map(async (name) => ({
      name,
      instances: instancesOf(await consulGet<ConsulHealthEntry[]>(consul, `/health/service/${encodeURIComponent(name)}`, {}, timeoutMs)),
    })),
  );
}
