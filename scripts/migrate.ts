// `make migrate`: applies the schema migrations to the database that PG* variables name.
import { readEnv } from "../src/platform/config.js";
import { migrate } from "../src/reference/stores/migrations.js";
import { createPostgresPool, postgresConfigFromEnv } from "../src/reference/stores/postgres.js";

const env = readEnv();
const pool = createPostgresPool(postgresConfigFromEnv(env), (error) => console.error(error));
env.done();
const applied = await migrate(pool);
console.log(applied.length ? `applied migrations ${applied.join(", ")}` : "schema up to date");
await pool.end();
