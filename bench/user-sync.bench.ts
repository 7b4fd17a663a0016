/**
 * User upsert throughput: the batched path (one INSERT ... SELECT FROM unnest ... ON CONFLICT
 * statement per batch, what user-sync runs) against the row-by-row path (one statement per user)
 * in the same run, on the real PostgreSQL. Each path writes fresh users, then the same users
 * again (the update half of an upsert); the two paths alternate so neither gets a warmer cache.
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
import { migrate } from "../src/platform/migrations.js";
import { createPostgresPool, postgresConfigFromEnv } from "../src/platform/postgres.js";
import { pipeline } from "node:stream/promises";
import { Readable } from "node:stream";
import { from as copyFrom } from "pg-copy-streams";
import { upsertUsers, upsertUsersRowByRow } from "../src/services/users/upsert.js";
import type { UserInput } from "../src/services/users/user-record.js";

const users = Number(process.env.BENCH_USERS ?? 20_000);
const batch = Number(process.env.BENCH_BATCH ?? 500);
const rounds = Number(process.env.BENCH_ROUNDS ?? 2);

const env = readEnv();
const pool = createPostgresPool(postgresConfigFromEnv(env), () => undefined);
env.done();
await migrate(pool);

function generate(prefix: string): UserInput[] {
  return Array.from({ length: users }, (_, i) => ({ thirdPartyId: `${prefix}${i}`, name: `User ${i}`, email: `u${i}@example.com`, phone: `+1555${i}`, status: "active" }));
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

const results = { batched: [] as number[], rowByRow: [] as number[], copy: [] as number[] };
for (let round = 1; round <= rounds; round++) {
  for (const [name, write] of [["batched", upsertUsers], ["rowByRow", upsertUsersRowByRow]] as const) {
    const input = generate(`bench-${name}-${randomUUID().slice(0, 8)}-`);
    const insertRate = await timed((b) => write(pool, b), input);
    const updateRate = await timed((b) => write(pool, b), input);
    results[name].push((insertRate + updateRate) / 2);
    console.error(`round ${round} ${name}: insert ${insertRate.toFixed(0)} users/s, update ${updateRate.toFixed(0)} users/s`);
  }
  results.copy.push(await copyCeiling(generate(`bench-copy-${round}-`)));
  console.error(`round ${round} COPY ceiling: ${results.copy.at(-1)!.toFixed(0)} users/s`);
}
// The benchmark's own rows and events: nothing else reads them.
await pool.query("DELETE FROM users WHERE third_party_id LIKE 'bench-%'");
await pool.query("DELETE FROM outbox WHERE stream = 'events:users' AND payload::text LIKE '%\"bench-%'");
await pool.end();

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
console.log(`\nuser upsert benchmark: ${users} users per path per round (insert, then update), batches of ${batch}, ${rounds} rounds`);
console.log(`machine: ${os.cpus().length} x ${os.cpus()[0]?.model ?? "cpu"}, node ${process.version}\n`);
console.log("| path | users/s (median) | vs row-by-row |");
console.log("|---|---|---|");
console.log(`| batched (one statement per batch) | ${median(results.batched).toFixed(0)} | ${(median(results.batched) / median(results.rowByRow)).toFixed(1)}x |`);
console.log(`| row-by-row (one statement per user) | ${median(results.rowByRow).toFixed(0)} | 1.0x |`);
console.log(`| ceiling: plain COPY into an empty temp table | ${median(results.copy).toFixed(0)} | ${(median(results.copy) / median(results.rowByRow)).toFixed(1)}x |`);
