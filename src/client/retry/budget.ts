/** RetryBudgetOptions, after Finagle's RetryBudget. */
export interface RetryBudgetOptions {
  /** Share of requests that may be retried, 0..1. Default 0.2 (20%). */
  percentCanRetry?: number;
  /** Retries allowed per second whatever the traffic, so a quiet client can still retry. Default 10. */
  minRetriesPerSecond?: number;
  /** Window over which requests and retries are counted, in ms. Default 10 000. */
  ttlMs?: number;
}

/**
 * RetryBudget caps retries at a fraction of the requests seen recently, plus a small floor, so
 * that an outage does not multiply load by the number of attempts (a retry storm).
 */
export interface RetryBudget {
  /** Counts one request (a first attempt). */
  deposit(): void;
  /** Takes one retry if the budget allows it, else returns false and takes nothing. */
  tryWithdraw(): boolean;
  /** Retries still allowed right now. */
  balance(): number;
}

/**
 * createRetryBudget counts in one-second buckets over the window, so every operation is O(1)
 * in the hot path (deposit) and O(window seconds) in the cold one (a retry).
 */
export function createRetryBudget(options: RetryBudgetOptions = {}, now: () => number = Date.now): RetryBudget {
  const { percentCanRetry = 0.2, minRetriesPerSecond = 10, ttlMs = 10_000 } = options;
  if (percentCanRetry < 0 || percentCanRetry > 1) throw new RangeError(`percentCanRetry must be in [0, 1], got ${percentCanRetry}`);
  const size = Math.max(1, Math.ceil(ttlMs / 1000));
  const seconds = new Float64Array(size).fill(-1);
  const deposits = new Float64Array(size);
  const withdrawals = new Float64Array(size);
  const floor = minRetriesPerSecond * (ttlMs / 1000);

  const bucket = (): number => {
    const second = Math.floor(now() / 1000);
    const index = second % size;
    if (seconds[index] !== second) {
      seconds[index] = second;
      deposits[index] = 0;
      withdrawals[index] = 0;
    }
    return index;
  };
  const balance = (): number => {
    const oldest = Math.floor(now() / 1000) - size + 1;
    let requests = 0;
    let retries = 0;
    for (let i = 0; i < size; i++) {
      if (seconds[i]! >= oldest) {
        requests += deposits[i]!;
        retries += withdrawals[i]!;
      }
    }
    return Math.floor(floor + percentCanRetry * requests - retries);
  };

  return {
    deposit() {
      deposits[bucket()]!++;
    },
    tryWithdraw() {
      const index = bucket();
      if (balance() < 1) return false;
      withdrawals[index]!++;
      return true;
    },
    balance,
  };
}
