import { withClient, type PostgresPool } from "./postgres.js";

/**
 * The schema, as ordered, append-only steps. Applied at start-up by every service (and by
 * `make migrate`), under an advisory lock so that instances starting together apply each once.
 */
const migrations: readonly { id: number; name: string; sql: string }[] = [
  {
    id: 1,
    name: "users, orders and the outbox",
    sql: `
      CREATE TABLE users (
        id             BIGSERIAL PRIMARY KEY,
        third_party_id TEXT NOT NULL UNIQUE,
        name           TEXT NOT NULL DEFAULT '',
        email          TEXT NOT NULL DEFAULT '',
        phone          TEXT NOT NULL DEFAULT '',
        status         TEXT NOT NULL DEFAULT '',
        created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
        updated_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
        last_synced_at TIMESTAMPTZ,
        version        BIGINT NOT NULL DEFAULT 1
      );
      CREATE TABLE orders (
        id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),
        idempotency_key TEXT NOT NULL UNIQUE,
        user_id         TEXT NOT NULL,
        product         TEXT NOT NULL,
        quantity        INTEGER NOT NULL CHECK (quantity > 0),
        amount_cents    BIGINT NOT NULL CHECK (amount_cents >= 0),
        status          TEXT NOT NULL DEFAULT 'PENDING',
        created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
        updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
        version         BIGINT NOT NULL DEFAULT 1
      );
      CREATE INDEX orders_pending ON orders (created_at) WHERE status = 'PENDING';
      -- Events written in the same transaction as the change they describe (transactional
      -- outbox); the relay publishes them to Redis Streams and stamps published_at.
      CREATE TABLE outbox (
        id           BIGSERIAL PRIMARY KEY,
        stream       TEXT NOT NULL,
        event_type   TEXT NOT NULL,
        payload      JSONB NOT NULL,
        created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
        published_at TIMESTAMPTZ
      );
      CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;
    `,
  },
  {
    id: 2,
    name: "task_schedule",
    sql: `
      -- When each scheduled task last started, so that instances sharing the database run it
      -- once per interval between them (see stores/cluster-schedule.ts).
      CREATE TABLE task_schedule (
        name            TEXT PRIMARY KEY,
        last_started_at TIMESTAMPTZ NOT NULL
      );
    `,
  },
  {
    id: 3,
    name: "counters that outlive the outbox",
    sql: `
      -- Running totals the read model shows that no table can recount once the outbox is pruned
      -- (see events/outbox-retention.ts): each event carries the new total.
      CREATE TABLE counters (
        name  TEXT PRIMARY KEY,
        value BIGINT NOT NULL
      );
      INSERT INTO counters (name, value)
        SELECT 'user_sync_failed', coalesce(sum((payload->>'failed')::bigint), 0)
        FROM outbox WHERE event_type = 'users.sync_completed';
    `,
  },
  {
    id: 4,
    name: "outbox publish lease",
    sql: `
      -- A relay claims rows for a short lease instead of holding their row locks in a transaction
      -- while it waits on Redis (see events/relay.ts): a Redis that hangs then holds no lock and no
      -- pool connection, and a relay that dies mid-publish hands its rows on when the lease ends.
      ALTER TABLE outbox ADD COLUMN publishing_until TIMESTAMPTZ;
    `,
  },
  {
    id: 5,
    name: "users in byte order",
    sql: `
      -- ListUsers pages by third_party_id in byte order, the order of the Redis index it also
      -- reads (see services/users/queries.ts): this index serves that order whatever the
      -- database's collation.
      CREATE INDEX users_third_party_id_bytes ON users (third_party_id COLLATE "C");
    `,
  },
];

export async function migrate(pool: PostgresPool): Promise<number[]> {
  return withClient(pool, async (client) => {
    // One lock for the whole schema: concurrent starters wait instead of racing.
    await client.query("SELECT pg_advisory_lock(74657369)");
    try {
      await client.query("CREATE TABLE IF NOT EXISTS schema_migrations (id INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())");
      const { rows } = await client.query<{ id: number }>("SELECT id FROM schema_migrations");
      const applied = new Set(rows.map((row) => row.id));
      const newlyApplied: number[] = [];
      for (const migration of migrations) {
        if (applied.has(migration.id)) continue;
        await client.query("BEGIN");
        try {
          await client.query(migration.sql);
          await client.query("INSERT INTO schema_migrations (id, name) VALUES ($1, $2)", [migration.id, migration.name]);
          await client.query("COMMIT");
          newlyApplied.push(migration.id);
        } catch (error) {
          await client.query("ROLLBACK");
          throw new Error(`migration ${migration.id} (${migration.name}) failed: ${(error as Error).message}`, { cause: error });
        }
      }
      return newlyApplied;
    } finally {
      await client.query("SELECT pg_advisory_unlock(74657369)").catch(() => undefined);
    }
  });
}
