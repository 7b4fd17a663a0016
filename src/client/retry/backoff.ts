/** BackoffOptions shape the wait before a retry. */
export interface BackoffOptions {
  /** Wait ceiling of the first retry, in ms. Default 25. */
  baseMs?: number;
  /** Largest wait, in ms. Default 1000. */
  maxMs?: number;
}

/**
 * backoffDelay is exponential backoff with full jitter (AWS Architecture Blog, "Exponential
 * Backoff and Jitter", 2015): a uniform draw in [0, min(max, base * 2^(retry-1))]. Full jitter
 * spreads retries of many clients the most, for the least total wait.
 *
 * ```ts
 * backoffDelay(1); // in [0, 25) ms
 * backoffDelay(3); // in [0, 100) ms
 * ```
 */
export function backoffDelay(retry: number, options: BackoffOptions = {}, random: () => number = Math.random): number {
  const { baseMs = 25, maxMs = 1000 } = options;
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.max(0, retry - 1));
  return random() * ceiling;
}
