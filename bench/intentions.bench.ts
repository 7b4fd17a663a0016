/**
 * Intention decision cost: nanoseconds per `decide` on a policy of 50 intentions, 10 of them L7
 * with 10 permissions each, default deny. One row per path through `decide`: an L4 caller (one
 * Map lookup), a caller only `*` names, an L7 caller whose 10th permission matches (nine
 * misses first, three of them regexes), an L7 caller no permission matches, and a caller no
 * intention applies to (a policy without `*`). The GC column counts collections during the timed
 * loop (v8's GCProfiler): `decide` is meant to allocate nothing, so it should stay 0 (a decide
 * that allocated one short string per call showed 6 to 17 here).
 *
 * Run: source scripts/lib.sh && node --import tsx bench/intentions.bench.ts
 */
import assert from "node:assert/strict";
import os from "node:os";
import { GCProfiler } from "node:v8";
import { compileIntentions, type CallAttributes, type ConsulIntention, type ConsulIntentionPermission, type Decision, type IntentionPolicy } from "../src/platform/mesh/intentions.js";

const decisionsPerRun = Number(process.env.BENCH_DECISIONS ?? 2_000_000);

function l4(source: string, action: "allow" | "deny"): ConsulIntention {
  return { SourceName: source, SourceNS: "default", DestinationName: "api", DestinationNS: "default", Action: action, Precedence: source === "*" ? 8 : 9 };
}

/** Nine permissions that miss "/pkg.Api/Get" (exact, prefix, regex paths), then one that matches. */
function l7(source: string): ConsulIntention {
  const misses: ConsulIntentionPermission[] = Array.from({ length: 9 }, (_, k) => {
    const http = k < 3 ? { PathExact: `/pkg.Other/M${k}` } : k < 6 ? { PathPrefix: `/pkg.Other${k}/` } : { PathRegex: `/pkg\\.Other${k}/M[0-9]+` };
    return { Action: k % 2 === 0 ? "deny" : "allow", HTTP: { ...http, Methods: ["POST"] } };
  });
  const match: ConsulIntentionPermission = { Action: "allow", HTTP: { PathRegex: "/pkg\\.Api/[A-Za-z]+", Methods: ["POST"], Header: [{ Name: "x-tenant", Exact: "acme" }] } };
  return { SourceName: source, SourceNS: "default", DestinationName: "api", DestinationNS: "default", Action: "", Permissions: [...misses, match], Precedence: 9 };
}

const exact = Array.from({ length: 39 }, (_, i) => l4(`svc-${i}`, i % 2 === 0 ? "allow" : "deny"));
const layer7 = Array.from({ length: 10 }, (_, i) => l7(`l7-${i}`));
const withStar = compileIntentions([...exact, ...layer7, l4("*", "deny")], { defaultAllow: false });
const withoutStar = compileIntentions([...exact, ...layer7, l4("svc-39", "allow")], { defaultAllow: false });

function attributes(source: string, path: string): CallAttributes {
  const headers: Record<string, string> = { "x-tenant": "acme", "content-type": "application/grpc" };
  return { source, path, method: "POST", header: (name) => headers[name] };
}

function measure(policy: IntentionPolicy, call: CallAttributes, expected: Decision): { ns: number; gcs: number } {
  assert.deepEqual(policy.decide(call), expected);
  let sink = 0;
  for (let i = 0; i < 500_000; i++) sink += policy.decide(call).allowed ? 1 : 0; // warm up
  const profiler = new GCProfiler();
  profiler.start();
  const started = process.hrtime.bigint();
  for (let i = 0; i < decisionsPerRun; i++) sink += policy.decide(call).allowed ? 1 : 0;
  const elapsed = Number(process.hrtime.bigint() - started);
  const gcs = profiler.stop()?.statistics.length ?? 0;
  if (sink < 0) console.error("unreachable");
  return { ns: elapsed / decisionsPerRun, gcs };
}

const cases: [string, IntentionPolicy, CallAttributes, Decision][] = [
  ["L4 allow (exact source)", withStar, attributes("svc-0", "/pkg.Api/Get"), { allowed: true }],
  ["L4 deny via `*`", withStar, attributes("unknown", "/pkg.Api/Get"), { allowed: false, reason: "intention" }],
  ["L7, 10th permission matches", withStar, attributes("l7-3", "/pkg.Api/Get"), { allowed: true }],
  ["L7, no permission matches", withStar, attributes("l7-3", "/pkg.Api/Get2"), { allowed: false, reason: "l7_no_match" }],
  ["default (no intention applies)", withoutStar, attributes("unknown", "/pkg.Api/Get"), { allowed: false, reason: "default" }],
];

console.log(`intention decision cost, 50 intentions (10 L7 x 10 permissions), ${decisionsPerRun} decisions per row, ${os.cpus().length} x ${os.cpus()[0]?.model ?? "cpu"}, node ${process.version}\n`);
console.log("| case | decision | ns per decision | GCs during the run |");
console.log("|---|---|---|---|");
for (const [name, policy, call, expected] of cases) {
  const { ns, gcs } = measure(policy, call, expected);
  const decision = expected.allowed ? "allow" : `deny (${expected.reason})`;
  console.log(`| ${name} | ${decision} | ${ns.toFixed(1)} ns | ${gcs} |`);
}
