import { Registry } from "prom-client";
import { createMeshTransport } from "../../client/index.js";
import type { EnvReader } from "../../platform/config.js";
import { createRedis, redisUrlFromEnv } from "../../platform/redis.js";
import { runService } from "../../server/run-service.js";
import { collectStatus } from "./collect.js";
import { statusRoutes } from "./routes.js";

function configure(env: EnvReader) {
  return {
    redisUrl: redisUrlFromEnv(env),
    services: env.list("STATUS_SERVICES", ["user-sync", "orders"]),
    watchIntervalMs: env.int("STATUS_WATCH_INTERVAL_MS", 1000, { min: 100 }),
  };
}

await runService({
  name: process.env.SERVICE_NAME ?? "status",
  version: "0.1.0",
  configure,
  async start(config, { consul, log }) {
    const redis = createRedis(config.redisUrl, (error) => log.warn({ err: error }, "Redis unreachable: totals read as 0"));
    const metrics = new Registry();
    const services = config.services.map((name) => ({ name, transport: createMeshTransport({ service: name, consul, metrics }) }));
    return {
      routes: statusRoutes({ collect: () => collectStatus(consul, redis, services), watchIntervalMs: config.watchIntervalMs }),
      async stop() {
        for (const { transport } of services) transport.close();
        redis.disconnect();
      },
    };
  },
});
