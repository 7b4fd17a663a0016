import { create } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { Health } from "../../../../gen/health/v1/health_pb.js";
import { ServiceStatusSchema, SystemStatusSchema, type SystemStatus } from "../../../../gen/meshkit/status/v1/status_pb.js";
import type { MeshTransport } from "../../../client/index.js";
import { statsKeys } from "../../events/read-model.js";
import type { ConsulClient } from "../../../platform/consul.js";
import type { Redis } from "../../stores/redis.js";

export interface WatchedService {
  name: string;
  transport: MeshTransport;
}

/**
 * collectStatus builds the system status: per service, Consul's count of registered and passing
 * instances and a health probe through the mesh (so one status request is one trace across the
 * services); totals from the read model. A part that cannot be read shows as zero/unreachable
 * instead of failing the whole answer.
 */
export async function collectStatus(consul: ConsulClient, redis: Redis, services: readonly WatchedService[]): Promise<SystemStatus> {
  const perService = await Promise.all(
    services.map(async ({ name, transport }) => {
      // Bounded like the probe below: one collector feeds every watcher (status-feed.ts), so a
      // Consul that hangs must not stall them all. (`timeout`, in ms, is the consul package's
      // request option; its types leave it out.)
      const query = { service: name, timeout: 2000 } as { service: string };
      const entries = (await consul.health.service(query).catch(() => [])) as { Checks: { Status: string }[] }[];
      const passing = entries.filter((entry) => entry.Checks.every((check) => check.Status === "passing")).length;
      const reachable = await createClient(Health, transport)
        .check({ service: "" }, { timeoutMs: 1000 })
        .then((answer) => answer.status === 1)
        .catch(() => false);
      return create(ServiceStatusSchema, { name, passingInstances: passing, totalInstances: entries.length, reachable });
    }),
  );
  const [users, orders, failed] = await redis.mget(statsKeys.users, statsKeys.orders, statsKeys.failedTasks).catch(() => [null, null, null]);
  return create(SystemStatusSchema, {
    services: perService,
    totalUsers: BigInt(users ?? 0),
    totalOrders: BigInt(orders ?? 0),
    failedTasks: BigInt(failed ?? 0),
    observedAt: timestampNow(),
  });
}

/** Two statuses are the same news when they differ only in when they were observed. */
export function sameStatus(a: SystemStatus, b: SystemStatus): boolean {
  const strip = (status: SystemStatus) => JSON.stringify({ ...status, observedAt: undefined }, (_key, value: unknown) => (typeof value === "bigint" ? value.toString() : value));
  return strip(a) === strip(b);
}
