import { Gauge, register as defaultRegistry, type Registry } from "prom-client";
import type { PostgresPool } from "../stores/postgres.js";

interface Backlog {
  events: number;
  oldestAgeSeconds: number;
}

/** Streams watched per registry, with the pool that reads each one's backlog. */
const watchedByRegistry = new WeakMap<Registry, Map<string, PostgresPool>>();

/**
 * observeOutbox exports the backlog of `streams` at every scrape, read from PostgreSQL (one query
 * per stream, served by the partial index of unpublished rows):
 *   meshkit_outbox_unpublished_events{stream}
 *   meshkit_outbox_oldest_unpublished_age_seconds{stream}   (0 when nothing waits)
 * A relay that cannot publish (Redis away) loses nothing, but the read model goes stale without a
 * sound; these make it heard (alert OutboxBacklog). Returns a function that stops watching.
 */
export function observeOutbox(pool: PostgresPool, streams: readonly string[], registry: Registry = defaultRegistry): () => void {
  let watched = watchedByRegistry.get(registry);
  if (!watched) {
    watched = new Map();
    watchedByRegistry.set(registry, watched);
    registerGauges(registry, watched);
  }
  for (const stream of streams) watched.set(stream, pool);
  return () => {
    for (const stream of streams) if (watched.get(stream) === pool) watched.delete(stream);
  };
}

function registerGauges(registry: Registry, watched: Map<string, PostgresPool>): void {
  // Both gauges come from one query per stream: the first collect of a scrape reads, the other
  // reuses that read.
  let reading: { at: number; backlogs: Promise<Map<string, Backlog>> } | undefined;
  const read = () => {
    if (!reading || performance.now() - reading.at > 1000) reading = { at: performance.now(), backlogs: readBacklogs(watched) };
    return reading.backlogs;
  };
  const registers = [registry];
  new Gauge({
    name: "meshkit_outbox_unpublished_events",
    help: "Events written to the outbox and not yet published to Redis, by stream.",
    labelNames: ["stream"],
    registers,
    async collect() {
      this.reset();
      for (const [stream, backlog] of await read()) this.set({ stream }, backlog.events);
    },
  });
  new Gauge({
    name: "meshkit_outbox_oldest_unpublished_age_seconds",
    help: "Age of the oldest event not yet published to Redis, by stream (0 when none waits).",
    labelNames: ["stream"],
    registers,
    async collect() {
      this.reset();
      for (const [stream, backlog] of await read()) this.set({ stream }, backlog.oldestAgeSeconds);
    },
  });
}

/** The backlog of every watched stream; a stream whose query failed (PostgreSQL away) is left out. */
async function readBacklogs(watched: Map<string, PostgresPool>): Promise<Map<string, Backlog>> {
  const backlogs = new Map<string, Backlog>();
  await Promise.all(
    [...watched].map(async ([stream, pool]) => {
      try {
        const { rows } = await pool.query<{ events: number; age: number }>(
          `SELECT count(*)::int AS events, coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 AS age
           FROM outbox WHERE published_at IS NULL AND stream = $1`,
          [stream],
        );
        backlogs.set(stream, { events: rows[0]!.events, oldestAgeSeconds: rows[0]!.age });
      } catch {
        // No series rather than a failed scrape: the process's other metrics still matter.
      }
    }),
  );
  return backlogs;
}
