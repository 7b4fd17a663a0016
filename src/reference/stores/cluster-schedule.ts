import type pg from "pg";
import type { Logger } from "../../platform/log.js";
import type { PostgresPool } from "./postgres.js";

/** ClusterScheduleOptions describe one task that every instance schedules and one runs. */
export interface ClusterScheduleOptions {
  /** Names the task across instances (and its row in `task_schedule`). */
  name: string;
  intervalMs: number;
  /** The work; its errors are the caller's to record (they are logged here as well). */
  run: () => Promise<unknown>;
  log: Logger;
  /** Told when this instance's tick did not run the task, and why. */
  onSkipped?: (reason: "running elsewhere" | "ran this interval") => void;
}

/** Advisory lock class of scheduled tasks and cluster locks; the name is the second key (hashtext). */
const scheduleLockClass = 74657370;

/** LockHeldElsewhere: withClusterLock found the lock taken, by another instance or another run here. */
export class LockHeldElsewhere extends Error {
  constructor(readonly lockName: string) {
    super(`the cluster lock "${lockName}" is held elsewhere`);
    this.name = "LockHeldElsewhere";
  }
}

/**
 * withClusterLock runs `work` while holding the session advisory lock `name`, across every
 * instance on the same PostgreSQL, on a connection of its own outside the pool (see
 * withOwnConnection): work that uses the pool has all of it. It does not wait: when the lock is
 * taken it throws LockHeldElsewhere. PostgreSQL drops the lock with the connection if this
 * process dies.
 */
export async function withClusterLock<T>(pool: PostgresPool, name: string, work: () => Promise<T>): Promise<T> {
  return withOwnConnection(pool, async (client) => {
    const { rows } = await client.query<{ locked: boolean }>("SELECT pg_try_advisory_lock($1, hashtext($2)) AS locked", [scheduleLockClass, name]);
    if (!rows[0]?.locked) throw new LockHeldElsewhere(name);
    return work();
  });
}

/**
 * scheduleAcrossInstances runs `run` about once per `intervalMs` across every instance that
 * schedules the same `name` against the same PostgreSQL, instead of once per instance.
 *
 * Each instance ticks every interval. A tick first takes a session advisory lock on a connection of
 * its own (so no two runs overlap, however long one takes; PostgreSQL drops the lock with the
 * connection if this process dies), then claims the interval in `task_schedule`: it runs only
 * if no instance started the task within the last 90% of an interval (the 10% absorbs timer
 * drift, so the instance that ran last time is not pushed out by a few milliseconds).
 *
 * That connection is opened with the pool's settings but outside the pool, and closed after the
 * tick (which drops the lock): held from the pool for a whole run, it was one connection fewer for
 * the task itself (a sync that upserts 10 batches at once from a pool of 10 saw batches time out
 * waiting for a connection, and counted their users as failed; issue 13, case 4).
 *
 * PostgreSQL rather than a Consul session: the task writes to PostgreSQL anyway, so this adds no
 * dependency, and a database that is down skips the tick instead of running it blind.
 */
export function scheduleAcrossInstances(pool: PostgresPool, options: ClusterScheduleOptions): { stop: () => void } {
  let ticking: Promise<void> | undefined;
  const tick = () =>
    withOwnConnection(pool, async (client) => {
      const { rows } = await client.query<{ locked: boolean }>("SELECT pg_try_advisory_lock($1, hashtext($2)) AS locked", [scheduleLockClass, options.name]);
      if (!rows[0]?.locked) return options.onSkipped?.("running elsewhere");
      const claimed = await client.query(
        `INSERT INTO task_schedule (name, last_started_at) VALUES ($1, now())
         ON CONFLICT (name) DO UPDATE SET last_started_at = now()
         WHERE task_schedule.last_started_at <= now() - $2 * interval '1 millisecond'
         RETURNING name`,
        [options.name, Math.floor(options.intervalMs * 0.9)],
      );
      if (claimed.rowCount === 0) return options.onSkipped?.("ran this interval");
      await options.run();
      // No unlock: closing the connection releases the lock, also when the unlock could not be sent.
    });
  const timer = setInterval(() => {
    // A tick still running (a long task) holds the lock; the next one waits its turn.
    if (ticking) return;
    ticking = tick()
      .catch((error: unknown) => options.log.error({ err: error, task: options.name }, "scheduled task failed"))
      .finally(() => (ticking = undefined));
  }, options.intervalMs);
  return { stop: () => clearInterval(timer) };
}

/**
 * Runs `work` on a new connection made with `pool`'s settings (pg-pool makes its own the same way,
 * `new pool.Client(pool.options)`), and closes it after. Its errors (PostgreSQL gone mid-tick) are
 * heard here so they cannot crash the process; the query in flight rejects with them anyway.
 */
async function withOwnConnection<T>(pool: PostgresPool, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pool.Client(pool.options);
  client.on("error", () => undefined);
  try {
    await client.connect();
    return await work(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}
