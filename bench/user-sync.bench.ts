/**
 * User upsert throughput: ours (one `INSERT ... SELECT FROM unnest(...) ON CONFLICT` statement per
 * batch, what user-sync runs) against the two ways a competent engineer would otherwise write a
 * batched upsert, on the real PostgreSQL:
 *  - multi-row VALUES: one `INSERT ... VALUES ($1..$5, now()), (...), ... ON CONFLICT` per batch;
 *  - COPY + INSERT SELECT: the batch `COPY`d into a session temporary table (ON COMMIT DELETE
 *    ROWS), then one `INSERT ... SELECT FROM` it `ON CONFLICT`.
 * All three use the same ON CONFLICT clause (versions kept for unchanged users) and write the same
 * outbox event in the same transaction, so they do the same work and leave the same state.
 *
 * Each path writes fresh users, then the same users changed (the update half of an upsert), then
 * them again unchanged (a re-sync of a source that did not change), each its own users. The paths
 * take turns batch by batch, in an order that rotates with every batch and round, so that the
 * drifting load of this shared machine weighs on all three alike; medians over the rounds.
 * The ceiling: a plain COPY of the same rows into an empty, unindexed temporary table (what
 * PostgreSQL can ingest at all, with no conflict handling, no outbox and no index).
 *
 * Run: make bench-sync   (or: source scripts/lib.sh && node --import tsx bench/user-sync.bench.ts)
 * Env: BENCH_USERS (per path and round, default 20000), BENCH_BATCH (default 500), BENCH_ROUNDS (default 3).
 */
import { randomUUID } from "node:crypto";
import os from "node:os";
import { pipeline } from "node:stream/promises";
import { Readable } from "node:stream";
import type pg from "pg";
import { from as copyFrom } from "pg-copy-streams";
import { readEnv } from "../src/platform/config.js";
import { migrate } from "../src/reference/stores/migrations.js";
import { createPostgresPool, inTransaction, postgresConfigFromEnv, type PostgresPool } from "../src/reference/stores/postgres.js";
import { appendUpserted, lastOfEachId, upsertConflictClause, upsertUsers } from "../src/reference/services/users/upsert.js";
import type { UserInput, UserRecord } from "../src/reference/services/users/user-record.js";

const users = Number(process.env.BENCH_USERS ?? 20_000);
const batch = Number(process.env.BENCH_BATCH ?? 500);
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);

const env = readEnv();
const pool = createPostgresPool(postgresConfigFromEnv(env), () => undefined);
env.done();
await migrate(pool);

type Written = UserRecord & { changed: boolean };

/** Baseline 1: one multi-row INSERT ... VALUES per batch (5 parameters a user), same clause, same event. */
async function upsertUsersValues(pool: PostgresPool, input: readonly UserInput[]): Promise<number> {
  const unique = lastOfEachId(input);
  if (unique.length === 0) return 0;
  return inTransaction(pool, async (client) => {
    const tuples = unique.map((_, i) => `($${5 * i + 1}, $${5 * i + 2}, $${5 * i + 3}, $${5 * i + 4}, $${5 * i + 5}, now())`);
    const { rows } = await client.query<Written>(
      `INSERT INTO users (third_party_id, name, email, phone, status, last_synced_at) VALUES ${tuples.join(", ")} ${upsertConflictClause}`,
      unique.flatMap((u) => [u.thirdPartyId, u.name, u.email, u.phone, u.status]),
    );
    await appendUpserted(client, rows);
    return rows.length;
  });
}

/** COPY's text format: backslash, tab, newline and carriage return escaped. */
const copyEscapes: Record<string, string> = { "\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r" };
const copyField = (value: string) => value.replace(/[\\\t\n\r]/g, (c) => copyEscapes[c]!);

/** Sessions (pooled connections) that already have the staging table. */
const staged = new WeakSet<pg.PoolClient>();

/** Baseline 2: COPY the batch into a temporary table, then one INSERT ... SELECT ... ON CONFLICT; same event. */
async function upsertUsersCopy(pool: PostgresPool, input: readonly UserInput[]): Promise<number> {
  const unique = lastOfEachId(input);
  if (unique.length === 0) return 0;
  return inTransaction(pool, async (client) => {
    if (!staged.has(client)) {
      // Once per session: emptied by every commit, so each transaction starts with it empty.
      await client.query("CREATE TEMP TABLE IF NOT EXISTS users_stage (third_party_id text, name text, email text, phone text, status text) ON COMMIT DELETE ROWS");
      staged.add(client);
    }
    const lines = unique.map((u) => [u.thirdPartyId, u.name, u.email, u.phone, u.status].map(copyField).join("\t") + "\n");
    await pipeline(Readable.from([lines.join("")]), client.query(copyFrom("COPY users_stage FROM STDIN")));
    const { rows } = await client.query<Written>(
      `INSERT INTO users (third_party_id, name, email, phone, status, last_synced_at)
       SELECT third_party_id, name, email, phone, status, now() FROM users_stage
       ${upsertConflictClause}`,
    );
    await appendUpserted(client, rows);
    return rows.length;
  });
}

function generate(prefix: string, generation = 1): UserInput[] {
  return Array.from({ length: users }, (_, i) => ({ thirdPartyId: `${prefix}${i}`, name: `User ${i} g${generation}`, email: `u${i}@example.com`, phone: `+1555${i}`, status: "active" }));
}

/** Users per second for a plain COPY of `input` into a fresh temporary table. */
async function copyCeiling(input: UserInput[]): Promise<number> {
  const client = await pool.connect();
  try {
    await client.query("CREATE TEMP TABLE copy_ceiling (third_party_id text, name text, email text, phone text, status text)");
    const started = performance.now();
    const rows = Readable.from(input.map((u) => `${u.thirdPartyId}\t${u.name}\t${u.email}\t${u.phone}\t${u.status}\n`));
    await pipeline(rows, client.query(copyFrom("COPY copy_ceiling FROM STDIN")));
    const rate = input.length / ((performance.now() - started) / 1000);
    await client.query("DROP TABLE copy_ceiling");
    return rate;
  } finally {
    client.release();
  }
}

/** What a path left behind, to show all three do the same work: the versions of its users. */
async function footprint(prefix: string): Promise<string> {
  const { rows } = await pool.query<{ versions: string }>("SELECT string_agg(DISTINCT version::text, ',') AS versions FROM users WHERE third_party_id LIKE $1", [`${prefix}%`]);
  return `versions ${rows[0]!.versions}`;
}

/** Bytes of outbox payload since row `id` that name users of `prefix`. */
async function outboxBytesFor(id: string, prefix: string): Promise<number> {
  const { rows } = await pool.query<{ bytes: string }>(
    "SELECT coalesce(sum(octet_length(payload::text)), 0)::text AS bytes FROM outbox WHERE id > $1 AND stream = 'events:users' AND strpos(payload::text, $2) > 0",
    [id, `"${prefix}`],
  );
  return Number(rows[0]!.bytes);
}

type Rates = { insert: number; update: number; unchanged: number };
type Pass = keyof Rates;
const paths = {
  "ours: INSERT ... SELECT FROM unnest": upsertUsers,
  "multi-row INSERT ... VALUES": upsertUsersValues,
  "COPY to a temp table + INSERT ... SELECT": upsertUsersCopy,
} as const;
type PathName = keyof typeof paths;
const names = Object.keys(paths) as PathName[];
const perPath = <T>(make: (name: PathName) => T) => Object.fromEntries(names.map((name) => [name, make(name)])) as Record<PathName, T>;
const results = perPath(() => [] as Rates[]);
const eventBytes = perPath(() => [] as number[]);
const footprints = new Map<PathName, string>();
const ceiling: number[] = [];

try {
  for (let round = 0; round < rounds; round++) {
    const prefixes = perPath(() => `bench-${randomUUID().slice(0, 8)}-`);
    const highWater = (await pool.query<{ id: string }>("SELECT coalesce(max(id), 0)::text AS id FROM outbox")).rows[0]!.id;
    const rates = perPath(() => ({}) as Rates);
    for (const [pass, generation] of [["insert", 1], ["update", 2], ["unchanged", 2]] as const) {
      const inputs = perPath((name) => generate(prefixes[name], generation));
      const elapsed = perPath(() => 0);
      // The paths take turns batch by batch, the order rotating with each batch and round.
      for (let start = 0, turn = 0; start < users; start += batch, turn++) {
        for (let k = 0; k < names.length; k++) {
          const name = names[(k + turn + round) % names.length]!;
          const slice = inputs[name].slice(start, start + batch);
          const started = performance.now();
          const written = await paths[name](pool, slice);
          elapsed[name] += performance.now() - started;
          if (written !== slice.length) throw new Error(`${name} wrote ${written} of ${slice.length} users`);
        }
      }
      for (const name of names) rates[name][pass] = users / (elapsed[name] / 1000);
    }
    for (const name of names) {
      eventBytes[name].push(await outboxBytesFor(highWater, prefixes[name]));
      footprints.set(name, await footprint(prefixes[name]));
      results[name].push(rates[name]);
      const r = rates[name];
      console.error(`round ${round + 1} ${name}: insert ${r.insert.toFixed(0)}, update ${r.update.toFixed(0)}, unchanged ${r.unchanged.toFixed(0)} users/s`);
    }
    ceiling.push(await copyCeiling(generate(`bench-copy-${round}-`)));
  }
} finally {
  // The benchmark's own rows and events: nothing else reads them.
  await pool.query("DELETE FROM users WHERE third_party_id LIKE 'bench-%'");
  await pool.query("DELETE FROM outbox WHERE stream = 'events:users' AND payload::text LIKE '%\"bench-%'");
  await pool.end();
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
};
const passes: Pass[] = ["insert", "update", "unchanged"];
const rate = (name: PathName, pass: Pass) => median(results[name].map((r) => r[pass]));
/** Users per second over the three passes together (harmonic mean: the time all three take). */
const overall = (name: PathName) => median(results[name].map((r) => 3 / passes.reduce((sum, pass) => sum + 1 / r[pass], 0)));
const fastest = (pass: Pass) => Math.max(...names.map((name) => rate(name, pass)));
const fastestOverall = Math.max(...names.map(overall));

console.log(`\nuser upsert benchmark: ${users} users per path per round (insert, update, unchanged re-sync), batches of ${batch}, ${rounds} rounds, paths alternating batch by batch`);
console.log(`machine: ${os.cpus().length} x ${os.cpus()[0]?.model ?? "cpu"}, node ${process.version}\n`);
console.log("| path | insert users/s | update users/s | unchanged users/s | all three users/s | fastest / this: insert, update, unchanged, all | state left | event MB |");
console.log("|---|---|---|---|---|---|---|---|");
for (const name of names) {
  const ratios = [...passes.map((pass) => fastest(pass) / rate(name, pass)), fastestOverall / overall(name)].map((r) => `${r.toFixed(2)}x`).join(", ");
  console.log(`| ${name} | ${rate(name, "insert").toFixed(0)} | ${rate(name, "update").toFixed(0)} | ${rate(name, "unchanged").toFixed(0)} | ${overall(name).toFixed(0)} | ${ratios} | ${footprints.get(name)} | ${(median(eventBytes[name]) / 1e6).toFixed(2)} |`);
}
console.log(`| ceiling: plain COPY into an empty temp table | ${median(ceiling).toFixed(0)} | | | | | | |`);
console.log(`\nours is ${(fastestOverall / overall(names[0]!)).toFixed(2)}x from the fastest path over all three passes (goal: within 1.20x)`);
