import type pgTypes from "pg";
import type PoolType from "pg-pool";
import type { EnvReader } from "../../platform/config.js";
import { isDependencyUnavailable } from "../../platform/dependency-errors.js";
import { requireInstrumented } from "./require-instrumented.js";

const pg = requireInstrumented("pg") as typeof pgTypes;
const Pool = requireInstrumented("pg-pool") as typeof PoolType;


export type PostgresPool = PoolType<pgTypes.Client>;

/** PostgresConfig, read from the standard libpq variables (PGHOST, PGPORT, ...). */
export interface PostgresConfig {
  host: string;
  port: number;
  user: string;
  database: string;
  password: string | undefined;
  /** Pool size bounds. Default max 10, min 2 (the seed's). */
  max: number;
  min: number;
}

export function postgresConfigFromEnv(env: EnvReader): PostgresConfig {
  return {
    host: env.string("PGHOST", "127.0.0.1"),
    port: env.port("PGPORT", 5432),
    user: env.string("PGUSER", "postgres"),
    database: env.string("PGDATABASE", "test"),
    password: env.optionalString("PGPASSWORD"),
    max: env.int("PG_POOL_MAX", 10, { min: 1, max: 1000 }),
    min: env.int("PG_POOL_MIN", 2, { min: 0, max: 1000 }),
  };
}

/**
 * createPostgresPool returns a bounded pg-pool of pg clients. Connections fail after 5 s instead
 * of hanging, and the pool's errors (a server restart drops idle clients) are reported, not
 * thrown into the event loop.
 */
export function createPostgresPool(config: PostgresConfig, onError: (error: Error) => void): PostgresPool {
  const pool = new Pool({
    Client: pg.Client,
    host: config.host,
    port: config.port,
    user: config.user,
    database: config.database,
    ...(config.password ? { password: config.password } : {}),
    max: config.max,
    min: Math.min(config.min, config.max),
    idleTimeoutMillis: 30_000,
    connectionTimeoutMillis: 5_000,
  } as PoolType.Config<pgTypes.Client>);
  pool.on("error", onError);
  return pool;
}

/**
 * Runs `work` on one client checked out of `pool`, and gives it back.
 *
 * While checked out, a client's connection errors are emitted as "error" events that pg-pool does
 * not listen to; unheard, one would crash the process when PostgreSQL goes away mid-transaction
 * (our chaos test found exactly that). The query in flight rejects as well, which is what the
 * caller sees; the broken client is then destroyed instead of going back to the pool, as is one
 * that failed with a dependency error or that `work` gave up on with `discard` (for example one
 * still holding a session lock it could not release).
 */
export async function withClient<T>(pool: PostgresPool, work: (client: pgTypes.PoolClient, discard: (reason: Error) => void) => Promise<T>): Promise<T> {
  const client = (await pool.connect()) as unknown as pgTypes.PoolClient;
  let broken: Error | undefined;
  const discard = (reason: Error) => (broken ??= reason);
  client.on("error", discard);
  try {
    return await work(client, discard);
  } catch (error) {
    if (isDependencyUnavailable(error)) discard(error as Error);
    throw error;
  } finally {
    client.off("error", discard);
    client.release(broken);
  }
}

/** Runs `work` in a transaction on one client (see withClient): COMMIT when it resolves, ROLLBACK when it throws. */
export async function inTransaction<T>(pool: PostgresPool, work: (client: pgTypes.PoolClient) => Promise<T>): Promise<T> {
  return withClient(pool, async (client) => {
    await client.query("BEGIN");
    try {
      const result = await work(client);
      await client.query("COMMIT");
      return result;
    } catch (error) {
      await client.query("ROLLBACK").catch(() => undefined);
      throw error;
    }
  });
}
