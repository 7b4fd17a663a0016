import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { startUserSource, type UserSourceServer } from "../../src/reference/dev/user-source.js";
import { scheduleAcrossInstances } from "../../src/reference/stores/cluster-schedule.js";
import { createLogger } from "../../src/platform/log.js";
import { migrate } from "../../src/reference/stores/migrations.js";
import type { PostgresPool } from "../../src/reference/stores/postgres.js";
import { killProcess, startServiceProcess, type ServiceProcess } from "../support/service-process.js";
import { testDatabase } from "../support/database.js";


describe("scheduled tasks run once per interval across instances (real PostgreSQL)", function () {
  this.timeout(60_000);
  const log = createLogger("cluster-schedule-test", {});
  const pools: PostgresPool[] = [];
  const instancePool = () => {
    const pool = testDatabase(3);
    pools.push(pool);
    return pool;
  };
  before(async () => {
    await migrate(instancePool());
  });
  after(async () => {
    await Promise.all(pools.map((pool) => pool.end()));
  });

  it("three instances ticking every 200 ms run the task about once per interval, never two at once", async () => {
    const name = `test-task-${randomUUID()}`;
    let running = 0;
    let mostAtOnce = 0;
    const runs: string[] = [];
    // Started 70 ms apart, so their ticks fall at different moments, as on separate hosts.
    const schedules = [];
    for (const instance of ["a", "b", "c"]) {
      schedules.push(
        scheduleAcrossInstances(instancePool(), {
          name,
          intervalMs: 200,
          log,
          run: async () => {
            running++;
            mostAtOnce = Math.max(mostAtOnce, running);
            runs.push(instance);
            await sleep(30);
            running--;
          },
        }),
      );
      await sleep(70);
    }
    await sleep(2000);
    for (const schedule of schedules) schedule.stop();
    // About ten intervals passed: each instance ticked about ten times, thirty ticks in all. A
    // claim needs 90% of an interval since the last, so eleven runs at most, and a few fewer
    // where the window cuts them.
    assert.ok(runs.length >= 8 && runs.length <= 12, `ran ${runs.length} times in 10 intervals: ${runs.join(",")}`);
    assert.equal(mostAtOnce, 1);
  });

  it("a run longer than the interval is not overlapped by another instance's tick", async () => {
    const name = `test-task-${randomUUID()}`;
    let running = 0;
    let mostAtOnce = 0;
    let runs = 0;
    const skipped: string[] = [];
    const schedules = [1, 2].map(() =>
      scheduleAcrossInstances(instancePool(), {
        name,
        intervalMs: 100,
        log,
        onSkipped: (reason) => skipped.push(reason),
        run: async () => {
          running++;
          runs++;
          mostAtOnce = Math.max(mostAtOnce, running);
          await sleep(350);
          running--;
        },
      }),
    );
    await sleep(1200);
    for (const schedule of schedules) schedule.stop();
    await sleep(400); // let the last run end
    assert.equal(mostAtOnce, 1);
    assert.ok(runs >= 2, `ran ${runs} times`);
    assert.ok(skipped.includes("running elsewhere"), `skips: ${skipped.join(",")}`);
  });

  it("holds no connection of the pool while the task runs: the task can use all of them (issue 13, case 4)", async () => {
    const pool = instancePool(); // 3 connections at most, connect timeout 5 s
    let ran: string | undefined;
    const schedule = scheduleAcrossInstances(pool, {
      name: `test-task-${randomUUID()}`,
      intervalMs: 100,
      log,
      run: async () => {
        // What a sync does: as many upserts at once as the pool has connections.
        const clients = await Promise.all([pool.connect(), pool.connect(), pool.connect()]);
        for (const client of clients) client.release();
        ran ??= "with every connection of the pool";
      },
    });
    try {
      const deadline = performance.now() + 3000;
      while (!ran && performance.now() < deadline) await sleep(50);
    } finally {
      schedule.stop();
    }
    assert.equal(ran, "with every connection of the pool");
  });

  describe("user-sync processes", () => {
    let source: UserSourceServer;
    const processes: ServiceProcess[] = [];
    after(async () => {
      await Promise.all(processes.map(killProcess));
      await source?.close();
    });

    it("two user-sync instances with SYNC_INTERVAL_MS=1000 sync once a second between them, not twice", async () => {
      source = await startUserSource(50, { prefix: `sched-${randomUUID().slice(0, 8)}-` });
      const env = { SERVICE_NAME: `user-sync-sched-${randomUUID().slice(0, 8)}`, CONSUL_CHECK_INTERVAL: "1s", USER_SOURCE_URL: source.url, SYNC_INTERVAL_MS: "1000" };
      processes.push(...(await Promise.all([1, 2].map(() => startServiceProcess("src/reference/services/users/main.ts", env)))));
      const syncsSoFar = () => processes.map((instance) => instance.output.filter((line) => line.includes('"msg":"user sync finished"')).length);
      const before = syncsSoFar();
      await sleep(5000);
      const during = syncsSoFar().map((count, n) => count - before[n]!);
      const total = during[0]! + during[1]!;
      // Five intervals: five runs between them (one either way for where the window cuts the
      // ticks); each instance on its own would have run five times, ten in all.
      assert.ok(total >= 4 && total <= 6, `syncs per instance in 5 s: ${during.join(" + ")}`);
    });
  });
});
