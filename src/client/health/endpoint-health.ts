import type { EventEmitter } from "node:events";
import type { ConnectError } from "@connectrpc/connect";
import { createBreaker, type Breaker, type BreakerOptions } from "./breaker.js";
import type { Outcome } from "../call/outcome-classifier.js";

export type BreakerState = "closed" | "half_open" | "open";

/**
 * Admission is how a pick let an attempt in: as an ordinary attempt, or as the one probe of a
 * half-open breaker. `epoch` is the health's state count at the time, so an outcome that
 * arrives after the state changed (an attempt admitted while closed, finishing while half-open)
 * is not taken for the probe's.
 */
export interface Admission {
  readonly probe: boolean;
  readonly epoch: number;
}

/**
 * EndpointHealth is an endpoint's circuit breaker as state the picker reads: the endpoint set
 * leaves out open endpoints (within the ejection cap) and half-open ones whose single probe is
 * in flight; a pick of a half-open endpoint takes its probe slot. opossum stays the engine (its
 * rolling window, thresholds and reset timer), but it is only told classified outcomes, after the
 * fact: it never refuses a call itself, never sees a caller's fault or cancellation (which it
 * would count as a success, closing a half-open breaker), and records no 0 ms "latency" for a
 * refusal.
 */
export class EndpointHealth {
  state: BreakerState = "closed";
  /** performance.now() when the breaker last opened: the oldest ejections are kept under a cap. */
  openedAt = 0;
  #probing = false;
  #epoch = 0;
  /** The admission of an ordinary attempt in this epoch: the same object for every pick until the state changes. */
  #ordinary: Admission = { probe: false, epoch: 0 };
  #breaker: Breaker | undefined;
  /** Set by close(): a retired endpoint's late outcomes make no breaker. */
  #closed = false;

  constructor(
    private readonly options: BreakerOptions | false,
    private readonly rotation: EventEmitter | undefined,
    private readonly onChange: (state: BreakerState) => void,
  ) {}

  /**
   * The breaker, made when the first outcome that counts arrives: a service of thousands of
   * instances, most of which one client never calls, would otherwise hold an opossum breaker
   * (about 8 KB, and a listener on the shared bucket rotation) per instance, and every discovery
   * change would pay for them in garbage collection. With no outcome yet the window is empty, so
   * a breaker made now is in the state one made earlier would be.
   */
  #breakerForReports(): Breaker | undefined {
    if (this.#breaker || this.#closed || this.options === false || !this.rotation) return this.#breaker;
    const breaker = createBreaker(this.options, this.rotation);
    const enter = (state: BreakerState) => () => {
      this.state = state;
      this.#epoch++;
      this.#ordinary = { probe: false, epoch: this.#epoch };
      this.#probing = false;
      if (state === "open") this.openedAt = performance.now();
      this.onChange(state);
    };
    breaker.on("open", enter("open"));
    breaker.on("halfOpen", enter("half_open"));
    breaker.on("close", enter("closed"));
    this.#breaker = breaker;
    return breaker;
  }

  /** Whether the endpoint is out of picks: open, or half-open with its probe in flight. */
  get unavailable(): boolean {
    return this.state === "open" || (this.state === "half_open" && this.#probing);
  }

  /**
   * admit is called for the endpoint a pick chose. A half-open endpoint gives its probe slot to
   * the first attempt; the caller must then rebuild the picker (the endpoint is now unavailable).
   */
  admit(): Admission {
    if (this.state === "half_open" && !this.#probing) {
      this.#probing = true;
      return { probe: true, epoch: this.#epoch };
    }
    return this.#ordinary;
  }

  /**
   * report tells the breaker an attempt's outcome. Only successes and instance failures count;
   * while half-open, only the probe's. A probe that ended as a caller fault or a cancellation
   * frees the slot for the next pick. Returns true when the endpoint's availability changed.
   */
  report(admission: Admission, outcome: Outcome, error: ConnectError | undefined): boolean {
    const counts = outcome === "success" || outcome === "instance_failure";
    const current = admission.epoch === this.#epoch;
    if (admission.probe && current && !counts) {
      this.#probing = false;
      return true;
    }
    if (!counts || this.state === "open" || (this.state === "half_open" && !(admission.probe && current))) return false;
    const breaker = this.#breakerForReports();
    if (!breaker) return false;
    if (outcome === "success") {
      // What `fire` does with an action that succeeds is emit these two events, and they are
      // what drive opossum's rolling statistics (and close a half-open breaker). Emitted
      // directly, a success costs two event dispatches instead of a replay through `fire` (its
      // promises, closures and argument copies): this runs on every attempt.
      if (!breaker.isShutdown) {
        breaker.emit("fire", noArguments);
        breaker.emit("success", undefined, 0);
      }
      return false;
    }
    // The attempt already ran: replay the failure through opossum so its statistics and state
    // machine (the threshold check that opens it) see it; the promise is settled here.
    void breaker.fire(() => Promise.reject(error ?? new Error("instance failure"))).catch(ignore);
    return false;
  }

  /** Stops the breaker's timers. */
  close(): void {
    this.#closed = true;
    this.#breaker?.shutdown();
  }
}

/** The arguments of a reported success (it has none), and the handler of a replayed failure's promise: shared, not made per report. */
const noArguments: readonly unknown[] = [];
const ignore = () => undefined;
