import type { ConnectRouter } from "@connectrpc/connect";
import type { Validator } from "@bufbuild/protovalidate";
import { UserSyncService } from "../../../../gen/meshkit/users/v1/users_pb.js";
import type { PostgresPool } from "../../stores/postgres.js";
import type { Redis } from "../../stores/redis.js";
import { getUser, listUsers } from "./queries.js";
import { validUser, type SyncResult } from "./sync.js";
import { recordSyncRun, upsertUsers } from "./upsert.js";
import type { UserInput } from "./user-record.js";
import { recordSyncRunMetrics, userSyncMetrics } from "./metrics.js";

export interface UserRoutesDeps {
  pool: PostgresPool;
  redis: Redis;
  validator: Validator;
  sync: () => Promise<SyncResult>;
  eventsWritten: () => void;
  /** Users per batch written by ImportUsers. */
  batchSize: number;
}

export function userRoutes(deps: UserRoutesDeps): (router: ConnectRouter) => void {
  const { pool, redis, validator, batchSize } = deps;
  return (router) =>
    router.service(UserSyncService, {
      async syncUsers() {
        const result = await deps.sync();
        deps.eventsWritten();
        return result;
      },
      async importUsers(requests) {
        const started = performance.now();
        let synced = 0;
        let failed = 0;
        let batch: UserInput[] = [];
        const flush = async () => {
          if (batch.length === 0) return;
          const written = await upsertUsers(pool, batch);
          synced += written;
          batch = [];
          deps.eventsWritten();
        };
        for await (const request of requests) {
          const user = request.user && validUser(validator, request.user);
          if (!user) {
            failed++;
            userSyncMetrics.errors.inc({ error_type: "invalid" });
            continue;
          }
          batch.push(user);
          if (batch.length >= batchSize) await flush();
        }
        await flush();
        recordSyncRunMetrics(synced, failed, (performance.now() - started) / 1000);
        await recordSyncRun(pool, synced, failed, "import");
        return { synced, failed };
      },
      async getUser(request) {
        return { user: await getUser(redis, pool, request.thirdPartyId) };
      },
      async listUsers(request) {
        return listUsers(redis, pool, request.pageSize, request.pageToken);
      },
    });
}
