import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Validator } from "@bufbuild/protovalidate";
import { UserInputSchema } from "../../../../gen/meshkit/users/v1/users_pb.js";
import type { Logger } from "../../../platform/log.js";
import type { PostgresPool } from "../../stores/postgres.js";
import { LockHeldElsewhere, withClusterLock } from "../../stores/cluster-schedule.js";
import { readUserSource, type SourceUser, type UserSourceOptions } from "./source.js";
import { recordSyncRun, upsertUsers } from "./upsert.js";
import type { UserInput } from "./user-record.js";
import { recordSyncRunMetrics, userSyncMetrics } from "./metrics.js";

export interface SyncResult {
  synced: number;
  failed: number;
}

/** validUser returns the user when it passes the proto's rules, else undefined. */
export function validUser(validator: Validator, input: UserInput): UserInput | undefined {
  const message = create(UserInputSchema, input);
  return validator.validate(UserInputSchema, message).kind === "valid" ? input : undefined;
}

function fromSource(user: SourceUser): UserInput {
  return {
    thirdPartyId: String(user.id ?? ""),
    name: user.name ?? "",
    email: user.email ?? "",
    phone: user.phone ?? "",
    status: user.status ?? "",
  };
}

/**
 * createUserSync runs syncs from the third-party source: each page is validated (an invalid user
 * counts as failed and is skipped) and upserted as one batch. A batch the database refuses counts
 * its users as failed and the sync goes on. A sync asked for while one runs here joins it; while
 * one runs on another instance it is refused with ABORTED (a cluster lock, `user_sync:run`): two
 * syncs at once would only write every user twice.
 */
export function createUserSync(pool: PostgresPool, validator: Validator, source: UserSourceOptions | undefined, log: Logger) {
  let running: Promise<SyncResult> | undefined;

  const run = async (): Promise<SyncResult> => {
    if (!source) throw new ConnectError("this instance has no user source configured (USER_SOURCE_URL)", Code.FailedPrecondition);
    const result: SyncResult = { synced: 0, failed: 0 };
    const started = performance.now();
    let sourceFailed = false;
    try {
      await readUserSource(source, async (page) => {
        const valid: UserInput[] = [];
        for (const user of page) {
          const input = validUser(validator, fromSource(user));
          if (input) valid.push(input);
          else {
            result.failed++;
            userSyncMetrics.errors.inc({ error_type: "invalid" });
          }
        }
        try {
          // Not `synced += await ...`: that reads `synced` before the await and would lose the
          // counts of pages written concurrently.
          const written = await upsertUsers(pool, valid);
          result.synced += written;
        } catch (error) {
          result.failed += valid.length;
          userSyncMetrics.errors.inc({ error_type: "database" });
          log.error({ err: error, users: valid.length }, "a batch of users could not be written");
        }
      });
    } catch (error) {
      sourceFailed = true;
      userSyncMetrics.errors.inc({ error_type: "source" });
      throw error;
    } finally {
      recordSyncRunMetrics(result.synced, result.failed + (sourceFailed ? 1 : 0), (performance.now() - started) / 1000);
      await recordSyncRun(pool, result.synced, result.failed, source.url).catch((error: unknown) => log.error({ err: error }, "sync run not recorded"));
      log.info({ ...result, ms: Math.round(performance.now() - started) }, "user sync finished");
    }
    return result;
  };

  const runAlone = () =>
    withClusterLock(pool, "user_sync:run", run).catch((error: unknown) => {
      if (error instanceof LockHeldElsewhere) throw new ConnectError("a user sync is already running on another instance; try again when it has finished", Code.Aborted);
      throw error;
    });

  return {
    sync(): Promise<SyncResult> {
      running ??= runAlone().finally(() => (running = undefined));
      return running;
    },
  };
}
