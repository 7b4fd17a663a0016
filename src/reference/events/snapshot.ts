import type pg from "pg";

export interface SnapshotOptions {
  stream: string;
  eventType: string;
  /** The payload field that carries each batch's rows. */
  field: string;
  /** The rows, as a SELECT (a constant of the service, never user input). */
  select: string;
  /** Their order across batches, in the SELECT's column names. */
  orderBy: string;
  /** Further payload fields, the same in every event. */
  extra?: Record<string, unknown>;
  batchSize?: number;
}

/**
 * appendSnapshot appends, on `client` (inside the caller's transaction), the rows of `select` to
 * the outbox as `eventType` events of `batchSize` rows each (default 500), under `field` of the
 * payload: the state a read model is rebuilt from when Redis lost it (OutboxRelayOptions.snapshot).
 * One statement, so that a table of 100,000 rows never passes through this process.
 */
export async function appendSnapshot(client: pg.PoolClient, options: SnapshotOptions): Promise<void> {
  await client.query(
    `INSERT INTO outbox (stream, event_type, payload)
     SELECT $1, $2, jsonb_build_object($3::text, jsonb_agg(r.row ORDER BY r.n)) || $4::jsonb
     FROM (
       SELECT row, n, (n - 1) / $5 AS batch
       FROM (SELECT to_jsonb(t) AS row, row_number() OVER (ORDER BY ${options.orderBy}) AS n FROM (${options.select}) t) numbered
     ) r
     GROUP BY r.batch ORDER BY r.batch`,
    [options.stream, options.eventType, options.field, JSON.stringify(options.extra ?? {}), options.batchSize ?? 500],
  );
}
