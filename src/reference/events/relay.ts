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
   * How long a claimed batch is this relay's to publish, in ms. Default 30 s. Longer than any
   * publish can take (Redis commands time out in seconds); a relay that died mid-publish leaves
   * its batch to the others after it.
   */
  leaseMs?: number;
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
 * startOutboxRelay publishes outbox rows to Redis Streams, oldest first, in three steps of which
 * none waits on Redis inside a PostgreSQL transaction: it claims a batch for `leaseMs` (one
 * UPDATE ... FOR UPDATE SKIP LOCKED, so several instances share the work and never take the same
 * rows), XADDs it in one pipeline (bounded by the connection's command timeout), and stamps it
 * published. If Redis fails or hangs, the claim is released and the batch tried again: an event
 * may be published twice (consumers are idempotent), never lost. (Until issue 13 the relay held
 * the batch's row locks and a pool connection in an open transaction while it waited on Redis:
 * a Redis that stopped answering held both for good.) When Redis comes back empty, the read
 * model is rebuilt: from a snapshot of the tables (`snapshot`), else by publishing every outbox
 * row again.
 */
export function startOutboxRelay(options: OutboxRelayOptions): OutboxRelay {
  const { pool, redis, streams, log, batchSize = 500, idleMs = 100, leaseMs = 30_000 } = options;
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

  const round = async (): Promise<number> => {
    const { rows } = await pool.query<{ id: string; stream: string; event_type: string; payload: unknown }>(
      `UPDATE outbox SET publishing_until = now() + $3 * interval '1 millisecond'
       WHERE id IN (
         SELECT id FROM outbox
         WHERE published_at IS NULL AND stream = ANY($1) AND (publishing_until IS NULL OR publishing_until < now())
         ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED)
       RETURNING id, stream, event_type, payload`,
      [streams, batchSize, leaseMs],
    );
    if (rows.length === 0) return 0;
    rows.sort((a, b) => (BigInt(a.id) < BigInt(b.id) ? -1 : 1)); // RETURNING keeps no order
    const ids = rows.map((row) => row.id);
    try {
      const pipeline = redis.pipeline();
      for (const row of rows) pipeline.xadd(row.stream, "*", "id", row.id, "type", row.event_type, "payload", JSON.stringify(row.payload));
      const results = (await pipeline.exec()) ?? [];
      const failed = results.find(([error]) => error);
      if (failed) throw failed[0];
    } catch (error) {
      // Let the next round (or another instance) take the batch at once rather than after the lease.
      await pool.query("UPDATE outbox SET publishing_until = NULL WHERE id = ANY($1::bigint[]) AND published_at IS NULL", [ids]).catch(() => undefined);
      throw error;
    }
    await pool.query("UPDATE outbox SET published_at = now(), publishing_until = NULL WHERE id = ANY($1::bigint[])", [ids]);
    return rows.length;
  };

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
