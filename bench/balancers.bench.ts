/**
 * Balancer pick cost at 10, 100 and 1,000 instances, for every built-in balancer, equal and
 * unequal weights: nanoseconds per pick, measured in one run over the same endpoint sets.
 * Picks are meant to be O(1): the ratio between 1,000 and 10 instances shows whether they are.
 *
 * Run: source scripts/lib.sh && node --import tsx bench/balancers.bench.ts
 */
import os from "node:os";
import { createBalancer, type Endpoint } from "../src/client/index.js";
import "../src/client/mesh-transport.js";

const picksPerRun = Number(process.env.BENCH_PICKS ?? 2_000_000);

function endpoints(n: number, weighted: boolean): Endpoint[] {
  return Array.from({ length: n }, (_, i) => ({
    instance: { id: `i${i}`, address: "127.0.0.1", port: 10_000 + i, weight: weighted ? 1 + (i % 5) : 1, tags: [], meta: {} },
    load: { outstanding: i % 3, latencyCost: () => 1 + (i % 7) },
  }));
}

function nsPerPick(name: string, set: Endpoint[]): number {
  const picker = createBalancer(name).picker(set);
  for (let i = 0; i < 100_000; i++) picker.pick(); // warm up
  const started = process.hrtime.bigint();
  let sink = 0;
  for (let i = 0; i < picksPerRun; i++) sink += picker.pick()!.instance.port;
  const elapsed = Number(process.hrtime.bigint() - started);
  if (sink === 0) console.error("unreachable");
  return elapsed / picksPerRun;
}

console.log(`balancer pick cost, ${picksPerRun} picks per cell, ${os.cpus().length} x ${os.cpus()[0]?.model ?? "cpu"}, node ${process.version}\n`);
console.log("| balancer | weights | 10 | 100 | 1000 | 1000 vs 10 |");
console.log("|---|---|---|---|---|---|");
for (const name of ["round_robin", "random", "least_outstanding", "peak_ewma"]) {
  for (const weighted of [false, true]) {
    const [ten, hundred, thousand] = [10, 100, 1000].map((n) => nsPerPick(name, endpoints(n, weighted)));
    console.log(`| ${name} | ${weighted ? "unequal" : "equal"} | ${ten!.toFixed(1)} ns | ${hundred!.toFixed(1)} ns | ${thousand!.toFixed(1)} ns | ${(thousand! / ten!).toFixed(2)} |`);
  }
}
