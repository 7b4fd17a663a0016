import { service } from "./telemetry.js"; // first: see telemetry.ts
import { Gauge, register } from "prom-client";
import { statsKeys } from "../../events/read-model.js";
import type { Redis } from "../../stores/redis.js";
import { createMeshTransport } from "../../../client/index.js";
import type { EnvReader } from "../../../platform/config.js";
import { createRedis, redisCommandTimeoutFromEnv, redisUrlFromEnv } from "../../stores/redis.js";
import { runService } from "../../../server/run-service.js";
import { collectStatus } from "./collect.js";
import { statusRoutes } from "./routes.js";

function configure(env: EnvReader) {
  return {
    redisUrl: redisUrlFromEnv(env),
    redisCommandTimeoutMs: redisCommandTimeoutFromEnv(env),
    services: env.list("STATUS_SERVICES", ["user-sync", "orders"]),
    watchIntervalMs: env.int("STATUS_WATCH_INTERVAL_MS", 1000, { min: 100 }),
  };
}

await runService({
  name: service.name,
  version: service.version,
  configure,
  async start(config, { consul, log, mesh }) {
    const redis = createRedis(config.redisUrl, (error) => log.warn({ err: error }, "Redis unreachable: totals read as 0"), { commandTimeoutMs: config.redisCommandTimeoutMs });
    registerTotalsGauges(redis);
    // The mesh client's metrics (breaker states, budget, calls) go to the registry /metrics serves.
    const services = config.services.map((name) => ({ name, transport: createMeshTransport({ service: name, consul, ...(mesh ? { mesh } : {}) }) }));
    return {
      routes: statusRoutes({ collect: () => collectStatus(consul, redis, services), watchIntervalMs: config.watchIntervalMs }),
      async stop() {
        for (const { transport } of services) transport.close();
        redis.disconnect();
      },
    };
  },
});

/** The read model's totals as gauges, read from Redis at scrape time (for the dashboard). */
function registerTotalsGauges(redis: Redis): void {
  const gauges = [
    ["meshkit_system_total_users", "Users in the read model.", statsKeys.users],
    ["meshkit_system_total_orders", "Orders in the read model.", statsKeys.orders],
    ["meshkit_system_failed_tasks", "Users that failed to sync, over all runs.", statsKeys.failedTasks],
  ] as const;
  for (const [name, help, key] of gauges) {
    new Gauge({
      name,
      help,
      registers: [register],
      async collect() {
        const value = await redis.get(key).catch(() => null);
        if (value !== null) this.set(Number(value));
      },
    });
  }
}
