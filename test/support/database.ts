import { randomUUID } from "node:crypto";
import { readEnv } from "../../src/platform/config.js";
import { createPostgresPool, postgresConfigFromEnv, type PostgresPool } from "../../src/reference/stores/postgres.js";

function config() {
  const env = readEnv();
  const postgres = postgresConfigFromEnv(env);
  env.done();
  return postgres;
}

/** A pool of at most `max` clients on the test database, configured as the services are (PGHOST, ...). */
export function testDatabase(max = 2): PostgresPool {
  return createPostgresPool({ ...config(), max, min: 0 }, () => undefined);
}

/** A database of the test's own on the shared PostgreSQL server. */
export interface PrivateDatabase {
  /** Its name: give it to services as PGDATABASE. */
  readonly name: string;
  readonly pool: PostgresPool;
  /** Closes the pool and drops the database (and any session still on it). */
  drop(): Promise<void>;
}

/**
 * privateDatabase creates an empty database for one test run, for tests that assert exact
 * totals (every order, every outbox row): in the shared `test` database other suites running at
 * the same time write orders, users and events too, and a whole-table count cannot be exact.
 * The services that use it apply the migrations themselves at start.
 */
export async function privateDatabase(label: string, { collation }: { collation?: "icu-en-US" } = {}): Promise<PrivateDatabase> {
  const name = `meshkit_${label.replace(/[^a-z0-9_]/gi, "_")}_${randomUUID().slice(0, 8)}`.toLowerCase();
  const admin = testDatabase(1);
  // icu-en-US: the natural-language order a database made with an English locale sorts text in
  // (not byte order), as many production databases are.
  const locale = collation === "icu-en-US" ? " TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'" : "";
  await admin.query(`CREATE DATABASE "${name}"${locale}`);
  const pool = createPostgresPool({ ...config(), database: name, max: 2, min: 0 }, () => undefined);
  return {
    name,
    pool,
    async drop() {
      await pool.end();
      await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`).catch(() => undefined);
      await admin.end();
    },
  };
}
