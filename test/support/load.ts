/** The outcome of a bounded load run. */
export interface LoadResult {
  calls: number;
  errors: unknown[];
  latenciesMs: number[];
}

/**
 * runLoad calls `call` from `concurrency` workers until `durationMs` has passed (or `maxCalls`
 * were made), recording errors and latencies. Bounded in time and count by construction.
 */
export async function runLoad(
  call: () => Promise<unknown>,
  { durationMs, concurrency = 4, maxCalls = 100_000 }: { durationMs: number; concurrency?: number; maxCalls?: number },
): Promise<LoadResult> {
  const result: LoadResult = { calls: 0, errors: [], latenciesMs: [] };
  const end = performance.now() + durationMs;
  const worker = async () => {
    while (performance.now() < end && result.calls < maxCalls) {
      result.calls++;
      const started = performance.now();
      try {
        await call();
      } catch (error) {
        result.errors.push(error);
      }
      result.latenciesMs.push(performance.now() - started);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return result;
}

export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}
