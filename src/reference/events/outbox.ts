import type pg from "pg";

/** OutboxEvent is one event as it travels: written to the outbox, relayed to a Redis stream. */
export interface OutboxEvent {
  /** The outbox row id: unique, increasing, used by consumers to apply an event once. */
  id: string;
  type: string;
  payload: Record<string, unknown>;
}

/**
 * appendEvents writes events to the outbox on `client`, which must be inside the transaction of
 * the change they describe: both commit, or neither does. One statement for any number of events.
 */
export async function appendEvents(client: pg.PoolClient, stream: string, events: readonly { type: string; payload: unknown }[]): Promise<void> {
  if (events.length === 0) return;
  await client.query(
    `INSERT INTO outbox (stream, event_type, payload)
     SELECT $1, t, p FROM unnest($2::text[], $3::jsonb[]) AS e(t, p)`,
    [stream, events.map((e) => e.type), events.map((e) => JSON.stringify(e.payload))],
  );
}
