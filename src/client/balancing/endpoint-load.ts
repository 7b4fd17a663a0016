import type { EndpointLoad } from "./balancer.js";

/** How fast past latency is forgotten: Finagle's and Linkerd's default decay time, 10 s. */
const defaultDecayMs = 10_000;

/**
 * MutableEndpointLoad is the transport's side of EndpointLoad: it counts attempts in flight
 * and folds each attempt's latency into a peak-EWMA estimate (a sample above the estimate
 * replaces it; a lower one is averaged in with weight 1 - e^(-elapsed/decay), elapsed being the
 * time since the previous sample).
 */
export class MutableEndpointLoad implements EndpointLoad {
  outstanding = 0;
  #cost = 0;
  #stamp = 0;

  constructor(private readonly decayMs = defaultDecayMs) {}

  started(): void {
    this.outstanding++;
  }

  /** An attempt the instance answered (well or as an instance failure) ended after `latencyMs`. */
  finished(latencyMs: number, nowMs: number): void {
    this.outstanding--;
    this.#observe(latencyMs, nowMs);
  }

  /**
   * An attempt ended without an answer that tells about the instance: the caller cancelled it,
   * its deadline ran out, or a hedge won. Its time is only a lower bound of the instance's
   * latency: it may raise the estimate (an instance that has not answered in 1 s is at least that
   * slow), never lower it (a call cancelled after 1 ms must not make a hung instance look fast).
   */
  finishedUnanswered(elapsedMs: number, nowMs: number): void {
    this.outstanding--;
    if (elapsedMs > this.latencyCost(nowMs)) this.#observe(elapsedMs, nowMs);
  }

  latencyCost(nowMs: number): number {
    // Decays toward zero while no call finishes, so an instance that was slow once, and was
    // avoided since, gets a probe again. Reading changes nothing.
    return this.#cost * Math.exp(-Math.max(nowMs - this.#stamp, 0) / this.decayMs);
  }

  #observe(latencyMs: number, nowMs: number): void {
    const elapsed = Math.max(nowMs - this.#stamp, 0);
    this.#stamp = nowMs;
    if (latencyMs > this.#cost) {
      this.#cost = latencyMs;
    } else {
      const keep = Math.exp(-elapsed / this.decayMs);
      this.#cost = this.#cost * keep + latencyMs * (1 - keep);
    }
  }
}
