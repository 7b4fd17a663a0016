import { service } from "./telemetry.js"; // first: see telemetry.ts
import { createValidator } from "@bufbuild/protovalidate";
import { UserSyncService } from "../../../../gen/meshkit/users/v1/users_pb.js";
import type { EnvReader } from "../../../platform/config.js";
import { scheduleAcrossInstances } from "../../stores/cluster-schedule.js";
import { runService } from "../../../server/run-service.js";
import { dataStoresConfigFromEnv, openDataStores, startEventPipeline } from "../../stores/data-stores.js";
import { projectUsers } from "./projection.js";
import { snapshotUsers } from "./snapshot.js";
import { userRoutes as routes } from "./routes.js";
import { createUserSync } from "./sync.js";
import { recordTask } from "../task-metrics.js";
import { usersStream } from "./upsert.js";

function configure(env: EnvReader) {
  const sourceUrl = env.optionalString("USER_SOURCE_URL");
  return {
    stores: dataStoresConfigFromEnv(env),
    source: sourceUrl
      ? {
          url: sourceUrl,
          pageSize: env.int("USER_SOURCE_PAGE_SIZE", 1000, { min: 1, max: 10_000 }),
          concurrency: env.int("USER_SOURCE_CONCURRENCY", 10, { min: 1, max: 100 }),
          timeoutMs: env.int("USER_SOURCE_TIMEOUT_MS", 5000, { min: 1 }),
          attempts: env.int("USER_SOURCE_ATTEMPTS", 3, { min: 1, max: 10 }),
        }
      : undefined,
    /** 0 turns the schedule off. Default 5 minutes when a source is set. */
    syncIntervalMs: env.int("SYNC_INTERVAL_MS", 300_000, { min: 0 }),
    importBatchSize: env.int("IMPORT_BATCH_SIZE", 500, { min: 1, max: 10_000 }),
  };
}

await runService({
  name: service.name,
  version: service.version,
  configure,
  // Users' names, e-mail addresses and phone numbers: with authentication on, reading them needs
  // meshkit.users.v1.UserSyncService:read.
  personalDataQueries: [UserSyncService.method.getUser, UserSyncService.method.listUsers],
  async start(config, { instanceId, log }) {
    const stores = await openDataStores(config.stores, log);
    const validator = createValidator();
    const events = startEventPipeline(stores, { stream: usersStream, group: "users-read-model", instanceId, log, project: projectUsers, snapshot: snapshotUsers });
    const userSync = createUserSync(stores.pool, validator, config.source, log);
    // Every instance schedules the sync; one of them runs it each interval.
    const scheduled =
      config.source && config.syncIntervalMs > 0
        ? scheduleAcrossInstances(stores.pool, {
            name: "user_sync",
            intervalMs: config.syncIntervalMs,
            run: () => recordTask("user_sync", userSync.sync).then(events.kick),
            log,
          })
        : undefined;
    return {
      routes: routes({ pool: stores.pool, redis: stores.redis, validator, sync: userSync.sync, eventsWritten: events.kick, batchSize: config.importBatchSize }),
      healthCheck: stores.checkPostgres,
      async stop() {
        scheduled?.stop();
        await events.stop();
        await stores.close();
      },
    };
  },
});
