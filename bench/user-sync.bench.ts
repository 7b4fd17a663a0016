/**
 * User upsert throughput: the batched path (one INSERT ... SELECT FROM unnest ... ON CONFLICT
 * statement per batch, what user-sync runs) against the row-by-row path (one statement per user)
 * in the same run, on the real PostgreSQL. Each path writes fresh users, then the same users
 * changed (the update half of an upsert), then them again unchanged (a re-sync of a source that
 * did not change: versions kept, ids-only events); the two paths alternate so neither gets a
 * warmer cache.
 *
 * The ceiling: a plain COPY of the same rows into an empty, unindexed temporary table (what
 * PostgreSQL can ingest at all, with no conflict handling, no outbox and no index).
 *
 * Run: make bench-sync   (or: source scripts/lib.sh && node --import tsx bench/user-sync.bench.ts)
 * Env: BENCH_USERS (per path and round, default 20000), BENCH_BATCH (default 500), BENCH_ROUNDS (default 2).
 */
import { randomUUID } from "node:crypto";
import os from "node:os";
import { readEnv } from "../src/platform/config.js";
import { migrate } from "../src/reference/stores/migrations.js";
import { createPostgresPool, postgresConfigFromEnv } from "../src/reference/stores/postgres.js";
import { pipeline } from "node:stream/promises";
import { Readable } from "node:stream";
import { from as copyFrom } from "pg-copy-streams";
import { upsertUsers, upsertUsersRowByRow } from "../src/reference/services/users/upsert.js";
import type { UserInput } from "../src/reference/services/users/user-record.js";

const users = Number(process.env.BENCH_USERS ?? 20_000);
const batch = Number(process.env.BENCH_BATCH ?? 500);
const rounds = Number(process.env.BENCH_ROUNDS ?? 2);

const env = readEnv();
const pool = createPostgresPool(postgresConfigFromEnv(env), () => undefined);
env.done();
await migrate(pool);

function generate(prefix: string, generation = 1): UserInput[] {
  return Array.from({ length: users }, (_, i) => ({ thirdPartyId: `${prefix}${i}`, name: `User ${i} g${generation}`, email: `u${i}@example.com`, phone: `+1555${i}`, status: "active" }));
}

async function timed(write: (batch: UserInput[]) => Promise<number>, input: UserInput[]): Promise<number> {
  const started = performance.now();
  for (let i = 0; i < input.length; i += batch) await write(input.slice(i, i + batch));
  return input.length / ((performance.now() - started) / 1000);
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

type Rates = { insert: number; update: number; unchanged: number };
type Pass = keyof Rates;
/** Bytes of outbox payload each pass of the batched path wrote, for the table's last line. */
const eventBytes: Record<Pass, number[]> = { insert: [], update: [], unchanged: [] };
const outboxHighWater = async () => (await pool.query<{ id: string }>("SELECT coalesce(max(id), 0)::text AS id FROM outbox")).rows[0]!.id;
const outboxBytesSince = async (id: string) =>
  Number((await pool.query<{ bytes: string }>("SELECT coalesce(sum(octet_length(payload::text)), 0)::text AS bytes FROM outbox WHERE id > $1 AND stream = 'events:users'", [id])).rows[0]!.bytes);
const results = { batched: [] as Rates[], rowByRow: [] as Rates[], copy: [] as number[] };
for (let round = 1; round <= rounds; round++) {
  for (const [name, write] of [["batched", upsertUsers], ["rowByRow", upsertUsersRowByRow]] as const) {
    const prefix = `bench-${name}-${randomUUID().slice(0, 8)}-`;
    const rates = {} as Rates;
    for (const [pass, generation] of [["insert", 1], ["update", 2], ["unchanged", 2]] as const) {
      const before = await outboxHighWater();
      rates[pass] = await timed((b) => write(pool, b), generate(prefix, generation));
      if (name === "batched") eventBytes[pass].push(await outboxBytesSince(before));
    }
    const { insert, update, unchanged } = rates;
    results[name].push(rates);
    console.error(`round ${round} ${name}: insert ${insert.toFixed(0)}, update ${update.toFixed(0)}, unchanged ${unchanged.toFixed(0)} users/s`);
  }
  results.copy.push(await copyCeiling(generate(`bench-copy-${round}-`)));
  console.error(`round ${round} COPY ceiling: ${results.copy.at(-1)!.toFixed(0)} users/s`);
}
// The benchmark's own rows and events: nothing else reads them.
await pool.query("DELETE FROM users WHERE third_party_id LIKE 'bench-%'");
await pool.query("DELETE FROM outbox WHERE stream = 'events:users' AND payload::text LIKE '%\"bench-%'");
await pool.end();

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
};
const rate = (path: Rates[], pass: Pass) => median(path.map((r) => r[pass]));
console.log(`\nuser upsert benchmark: ${users} users per path per round (insert, update, unchanged re-sync), batches of ${batch}, ${rounds} rounds`);
console.log(`machine: ${os.cpus().length} x ${os.cpus()[0]?.model ?? "cpu"}, node ${process.version}\n`);
console.log("| path | insert users/s | update users/s | unchanged re-sync users/s | insert vs row-by-row |");
console.log("|---|---|---|---|---|");
for (const [label, path] of [["batched (one statement per batch)", results.batched], ["row-by-row (one statement per user)", results.rowByRow]] as const) {
  console.log(`| ${label} | ${rate(path, "insert").toFixed(0)} | ${rate(path, "update").toFixed(0)} | ${rate(path, "unchanged").toFixed(0)} | ${(rate(path, "insert") / rate(results.rowByRow, "insert")).toFixed(1)}x |`);
}
console.log(`| ceiling: plain COPY into an empty temp table | ${median(results.copy).toFixed(0)} | | | ${(median(results.copy) / rate(results.rowByRow, "insert")).toFixed(1)}x |`);
console.log(`\nevent payload written per ${users} users (batched): insert ${(median(eventBytes.insert) / 1e6).toFixed(2)} MB, update ${(median(eventBytes.update) / 1e6).toFixed(2)} MB, unchanged re-sync ${(median(eventBytes.unchanged) / 1e6).toFixed(2)} MB`);
console.log(`batched vs row-by-row: update ${(rate(results.batched, "update") / rate(results.rowByRow, "update")).toFixed(1)}x, unchanged re-sync ${(rate(results.batched, "unchanged") / rate(results.rowByRow, "unchanged")).toFixed(1)}x`);
