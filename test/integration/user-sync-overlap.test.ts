import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { UserSyncService } from "../../gen/meshkit/users/v1/users_pb.js";
import { startUserSource, type UserSourceServer } from "../../src/reference/dev/user-source.js";
import { privateDatabase, type PrivateDatabase } from "../support/database.js";
import { killProcess, startServiceProcess, type ServiceProcess } from "../support/service-process.js";

describe("user syncs never overlap across instances (issue 13, case 4)", function () {
  this.timeout(120_000);
  const run = randomUUID().slice(0, 8);
  let database: PrivateDatabase;
  let source: UserSourceServer;
  const processes: ServiceProcess[] = [];

  before(async () => {
    database = await privateDatabase("sync_overlap");
    source = await startUserSource(20_000, { prefix: `overlap-${run}-` });
    const env = { SERVICE_NAME: `user-sync-overlap-${run}`, SYNC_INTERVAL_MS: "0", USER_SOURCE_URL: source.url, PGDATABASE: database.name };
    processes.push(...(await Promise.all([1, 2].map(() => startServiceProcess("src/reference/services/users/main.ts", env)))));
  });
  after(async () => {
    await Promise.all(processes.map(killProcess));
    await source?.close();
    await database?.drop();
  });

  it("runs one of two SyncUsers asked of two instances at once, and refuses the other with ABORTED", async () => {
    const clients = processes.map((instance) => createClient(UserSyncService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${instance.port}` })));
    const answers = await Promise.all(
      clients.map((client) =>
        client.syncUsers({}, { timeoutMs: 60_000 }).then(
          (result) => `synced ${result.synced}, failed ${result.failed}`,
          (error: unknown) => Code[ConnectError.from(error).code],
        ),
      ),
    );
    assert.deepEqual([...answers].sort(), ["Aborted", "synced 20000, failed 0"]);
    // One run recorded, not two.
    const { rows } = await database.pool.query("SELECT count(*)::int AS n FROM outbox WHERE event_type = 'users.sync_completed'");
    assert.equal(rows[0].n, 1);
  });
});
