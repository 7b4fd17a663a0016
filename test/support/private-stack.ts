import { privateDatabase, type PrivateDatabase } from "./database.js";
import { startPrivateRedis, type PrivateRedis } from "./private-redis.js";
import { killProcess, startServiceProcess, type ServiceProcess } from "./service-process.js";

/**
 * PrivateStack is what a suite that counts exactly builds for itself: a Redis of its own
 * (`startPrivateRedis`), a database of its own on the shared PostgreSQL (`privateDatabase`), and
 * the service processes it starts against both. Shared ones would not do: other suites' relays
 * would publish their events into this suite's streams and read model, and totals would count
 * every other run's orders and users.
 *
 * ```ts
 * let stack: PrivateStack;
 * before(async () => (stack = await startPrivateStack("dead_letter")));
 * after(() => stack?.close());
 * it("...", async () => {
 *   const orders = await stack.start("src/reference/services/orders/main.ts", { SERVICE_NAME: "orders-x" });
 *   await stack.redis.client.xlen("events:orders");
 * });
 * ```
 */
export interface PrivateStack {
  readonly redis: PrivateRedis;
  readonly database: PrivateDatabase;
  /** What a service needs to use them: REDIS_URL and PGDATABASE. */
  readonly env: { readonly REDIS_URL: string; readonly PGDATABASE: string };
  /**
   * start runs `entry` with `startServiceProcess`, its environment `env` and then `extraEnv`
   * (which may override either), and keeps the process for `close()`.
   */
  start(entry: string, extraEnv?: Record<string, string>): Promise<ServiceProcess>;
  /**
   * close ends everything, in order: every process `start` started (killed, whatever its state),
   * then Redis (resumed first if paused, then killed; its client disconnected), then the database
   * (dropped). Safe to call more than once.
   */
  close(): Promise<void>;
}

/**
 * startPrivateStack starts a private Redis and creates a private database, named after `label`
 * (`collation` as for `privateDatabase`). Should one of the two fail, the other is undone before
 * the error is thrown.
 */
export async function startPrivateStack(label: string, { collation }: { collation?: "icu-en-US" } = {}): Promise<PrivateStack> {
  const [redisResult, databaseResult] = await Promise.allSettled([startPrivateRedis(), privateDatabase(label, collation ? { collation } : {})]);
  if (redisResult.status === "rejected" || databaseResult.status === "rejected") {
    if (redisResult.status === "fulfilled") await redisResult.value.close();
    if (databaseResult.status === "fulfilled") await databaseResult.value.drop();
    throw redisResult.status === "rejected" ? redisResult.reason : (databaseResult as PromiseRejectedResult).reason;
  }
  const redis = redisResult.value;
  const database = databaseResult.value;
  const env = { REDIS_URL: redis.url, PGDATABASE: database.name };
  const processes: Promise<ServiceProcess>[] = [];
  let closed: Promise<void> | undefined;
  return {
    redis,
    database,
    env,
    start(entry, extraEnv = {}) {
      const started = startServiceProcess(entry, { ...env, ...extraEnv });
      processes.push(started);
      return started;
    },
    close: () =>
      (closed ??= (async () => {
        // A process that failed to start was already killed by startServiceProcess.
        await Promise.all(processes.map((started) => started.then(killProcess, () => undefined)));
        redis.resume();
        await redis.close();
        await database.drop();
      })()),
  };
}
