/**
 * HedgingOptions turn on hedged requests for a method the proto marks idempotent
 * (`NO_SIDE_EFFECTS` or `IDEMPOTENT`; hedging is never applied to any other): when the first
 * attempt has not answered after a delay, a second one goes to another instance, and the first
 * answer wins (the others are cancelled). Hedges are paid from the retry budget, so they add at
 * most the budget's share of load (20% by default) however slow the service gets. Whatever the
 * delay says, a hedge goes no later than half of what is left of the call's deadline.
 */
export interface HedgingOptions {
  /** Attempts per call in all, the first included (hedges and retries alike). Default 2. */
  maxAttempts?: number;
  /** A fixed delay before each hedge, in ms. Overrides `percentile`. */
  delayMs?: number;
  /**
   * Hedge after this percentile of the method's recent successful latencies (e.g. 95: hedge
   * the slowest 5%). Default 95. Until `minSamples` calls have answered, `initialDelayMs` applies.
   */
  percentile?: number;
  /** Latencies kept per method, the most recent. Default 1000. */
  window?: number;
  /** Answers needed before the percentile is used. Default 100. */
  minSamples?: number;
  /** The delay used before enough samples exist, in ms. Default 100. */
  initialDelayMs?: number;
  /** Smallest delay ever used, in ms, so hedging cannot double the load of a fast service. Default 1. */
  minDelayMs?: number;
}

/**
 * HedgeDelay is the delay before a hedge, fixed or the recent latency percentile of one method.
 * A ring of recent latencies; the percentile is recomputed (one sort of the ring) every tenth of
 * the window, not per call: the hot path is one store.
 */
export class HedgeDelay {
  #ring: Float64Array;
  #count = 0;
  #next = 0;
  #sinceSort = 0;
  #cached: number;

  constructor(private readonly options: HedgingOptions) {
    this.#ring = new Float64Array(Math.max(10, options.window ?? 1000));
    this.#cached = options.initialDelayMs ?? 100;
  }

  /** The delay to wait before the next hedge, in ms. */
  current(): number {
    if (this.options.delayMs !== undefined) return this.options.delayMs;
    return Math.max(this.options.minDelayMs ?? 1, this.#cached);
  }

  /** Records the latency of a successful call. */
  observe(latencyMs: number): void {
    if (this.options.delayMs !== undefined) return;
    this.#ring[this.#next] = latencyMs;
    this.#next = (this.#next + 1) % this.#ring.length;
    if (this.#count < this.#ring.length) this.#count++;
    if (++this.#sinceSort < this.#ring.length / 10 || this.#count < (this.options.minSamples ?? 100)) return;
    this.#sinceSort = 0;
    const sorted = this.#ring.slice(0, this.#count).sort();
    const p = this.options.percentile ?? 95;
    this.#cached = sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
  }
}
