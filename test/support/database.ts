import { readEnv } from "../../src/platform/config.js";
import { createPostgresPool, postgresConfigFromEnv, type PostgresPool } from "../../src/reference/stores/postgres.js";

/** A pool of at most `max` clients on the test database, configured as the services are (PGHOST, ...). */
export function testDatabase(max = 2): PostgresPool {
  const env = readEnv();
  const config = postgresConfigFromEnv(env);
  env.done();
  return createPostgresPool({ ...config, max, min: 0 }, () => undefined);
}
