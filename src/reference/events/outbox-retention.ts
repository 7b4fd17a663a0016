import type { PostgresPool } from "../stores/postgres.js";

/**
 * pruneOutbox deletes the rows of `streams` published more than `olderThanMs` ago, in batches of
 * `batchSize` (short transactions, no long lock on the table), and returns how many it deleted.
 * Rows not yet published are never touched, whatever their age.
 *
 * What makes pruning safe: nothing reads published rows again. The relay rebuilds a read model
 * that Redis lost from a snapshot of the tables (OutboxRelayOptions.snapshot), not by replaying
 * the outbox, and totals that no table can recount live in `counters`.
 */
export async function pruneOutbox(pool: PostgresPool, streams: readonly string[], olderThanMs: number, batchSize = 5000): Promise<number> {
  let deleted = 0;
  for (;;) {
    const { rowCount } = await pool.query(
      `DELETE FROM outbox WHERE id IN (
         SELECT id FROM outbox
         WHERE stream = ANY($1) AND published_at IS NOT NULL AND published_at < now() - $2 * interval '1 millisecond'
         LIMIT $3)`,
      [streams, olderThanMs, batchSize],
    );
    deleted += rowCount ?? 0;
    if ((rowCount ?? 0) < batchSize) return deleted;
  }
}
