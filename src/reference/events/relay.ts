import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "pino";
import type pg from "pg";
import type { PostgresPool } from "../stores/postgres.js";
import { inTransaction } from "../stores/postgres.js";
import type { Redis } from "../stores/redis.js";

/**
 * The Redis key whose absence tells a relay that Redis lost its data (a restart without
 * persistence). One per set of streams: services sharing one Redis each rebuild their own read
 * model (with one key for all, the first relay to notice took it and the others never rebuilt).
 */
export const readModelEpochKey = (streams: readonly string[]) => `readmodel:epoch:${[...streams].sort().join(",")}`;

export interface OutboxRelayOptions {
  pool: PostgresPool;
  redis: Redis;
  /** Outbox streams this relay publishes (each a Redis stream of the same name). */
  streams: readonly string[];
  log: Logger;
  /** Rows per round. Default 500. */
  batchSize?: number;
  /** Pause when the outbox is empty, in ms. Default 100. */
  idleMs?: number;
  /**
   * Appends, on `client` (in a transaction), events that carry the whole current state of these
   * streams' entities, for rebuilding a read model Redis lost. Without it the relay publishes
   * every outbox row again, which is only complete while the outbox is never pruned.
   */
  snapshot?: (client: pg.PoolClient) => Promise<void>;
}

export interface OutboxRelay {
  /** Asks for a round now (after a command committed), instead of at the next idle tick. */
  kick(): void;
  stop(): Promise<void>;
}

/**
 * startOutboxRelay publishes outbox rows to Redis Streams, oldest first: in one PostgreSQL
 * transaction it locks a batch (FOR UPDATE SKIP LOCKED, so several instances share the work),
 * XADDs it in one pipeline, and stamps it published. If Redis fails, the transaction rolls back
 * and the batch is tried again: an event may be published twice (consumers are idempotent), never
 * lost. When Redis comes back empty, the read model is rebuilt: from a snapshot of the tables
 * (`snapshot`), else by publishing every outbox row again.
 */
export function startOutboxRelay(options: OutboxRelayOptions): OutboxRelay {
  const { pool, redis, streams, log, batchSize = 500, idleMs = 100 } = options;
  const stopping = new AbortController();
  let wake: (() => void) | undefined;
  let failures = 0;

  const epochKey = readModelEpochKey(streams);
  const ensureEpoch = async () => {
    if (await redis.exists(epochKey)) return;
    if ((await redis.set(epochKey, randomUUID(), "NX")) !== "OK") return;
    try {
      if (options.snapshot) {
        await inTransaction(pool, options.snapshot);
        log.warn({ streams }, "Redis came back without the read model: publishing a snapshot of the tables");
        return;
      }
      const { rowCount } = await pool.query("UPDATE outbox SET published_at = NULL WHERE stream = ANY($1) AND published_at IS NOT NULL", [streams]);
      if (rowCount) log.warn({ events: rowCount }, "Redis came back without the read model: publishing every event again");
    } catch (error) {
      // Not rebuilt: let the next round (this instance's or another's) try again.
      await redis.del(epochKey).catch(() => undefined);
      throw error;
    }
  };

  const round = (): Promise<number> =>
    inTransaction(pool, async (client) => {
      const { rows } = await client.query<{ id: string; stream: string; event_type: string; payload: unknown }>(
        `SELECT id, stream, event_type, payload FROM outbox
         WHERE published_at IS NULL AND stream = ANY($1)
         ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED`,
        [streams, batchSize],
      );
      if (rows.length === 0) return 0;
      const pipeline = redis.pipeline();
      for (const row of rows) pipeline.xadd(row.stream, "*", "id", row.id, "type", row.event_type, "payload", JSON.stringify(row.payload));
      const results = (await pipeline.exec()) ?? [];
      const failed = results.find(([error]) => error);
      if (failed) throw failed[0];
      await client.query("UPDATE outbox SET published_at = now() WHERE id = ANY($1::bigint[])", [rows.map((row) => row.id)]);
      return rows.length;
    });

  const loop = (async () => {
    while (!stopping.signal.aborted) {
      try {
        await ensureEpoch();
        const published = await round();
        if (failures > 0) log.info({ after: failures }, "outbox relay recovered");
        failures = 0;
        if (published === batchSize) continue;
      } catch (error) {
        failures++;
        if (failures === 1 || failures % 50 === 0) log.warn({ err: error, failures }, "outbox relay round failed; retrying");
      }
      const pause = failures ? Math.min(2000, 100 * 2 ** Math.min(failures, 5)) : idleMs;
      await Promise.race([sleep(pause, undefined, { signal: stopping.signal }).catch(() => undefined), new Promise<void>((resolve) => (wake = resolve))]);
      wake = undefined;
    }
  })();

  return {
    kick: () => wake?.(),
    async stop() {
      stopping.abort();
      wake?.();
      await loop;
    },
  };
}
