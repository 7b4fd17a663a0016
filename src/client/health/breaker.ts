import { EventEmitter } from "node:events";
import CircuitBreaker from "opossum";

/** BreakerOptions configure the circuit breaker of each instance (opossum). */
export interface BreakerOptions {
  /** Share of failed attempts, in percent, in the rolling window that opens the breaker. Default 50. */
  errorThresholdPercentage?: number;
  /**
   * Attempts in the window before the breaker may open at all. Default 10. (opossum's default, 0,
   * opens on the very first failure: one unlucky call would eject an instance.)
   */
  volumeThreshold?: number;
  /** How long an open breaker waits before letting one probe through (half-open), in ms. Default 10 000. */
  resetTimeoutMs?: number;
  /** Length of the rolling statistics window, in ms. Default 10 000, in 10 buckets. */
  rollingWindowMs?: number;
  /**
   * Instance failures in a row that open the breaker whatever the window's percentage says
   * (Linkerd's "failure accrual"). Default 5. A percentage over a 10 s window reacts slowly to
   * an instance that was healthy until a moment ago (a hung process): its past successes dilute
   * the new failures; a run of failures does not lie.
   */
  consecutiveFailures?: number;
}

export type Breaker = CircuitBreaker<[() => Promise<unknown>], unknown>;

/**
 * createBreaker makes the opossum circuit breaker of one instance. It is only ever told outcomes
 * the classifier counts (successes and instance failures, see EndpointHealth), so it needs no
 * error filter: opossum reports a filtered error as a success, which would close a half-open
 * breaker on a caller's mistake.
 *
 * Its own timer is off (`timeout: false`): opossum's timeout does not cancel the call it gives
 * up on, so the attempt timeout is instead the gRPC deadline of the attempt, which cancels the
 * HTTP/2 stream, tells the server to stop, and reaches the breaker as DEADLINE_EXCEEDED.
 * Snapshots and percentiles are off (they cost timers and a sort per failure), and bucket
 * rotation is driven by one shared timer for all breakers instead of one per breaker.
 */
export function createBreaker(options: BreakerOptions, rotation: EventEmitter): Breaker {
  const rollingCountTimeout = options.rollingWindowMs ?? 10_000;
  const breaker: Breaker = new CircuitBreaker((attempt: () => Promise<unknown>) => attempt(), {
    timeout: false,
    errorThresholdPercentage: options.errorThresholdPercentage ?? 50,
    volumeThreshold: options.volumeThreshold ?? 10,
    resetTimeout: options.resetTimeoutMs ?? 10_000,
    rollingCountTimeout,
    rollingCountBuckets: 10,
    rollingPercentilesEnabled: false,
    enableSnapshots: false,
    rotateBucketController: rotation,
  });
  // opossum has no consecutive-failure trigger: count runs of failures here.
  const limit = options.consecutiveFailures ?? 5;
  let run = 0;
  breaker.on("success", () => (run = 0));
  breaker.on("failure", () => {
    if (++run >= limit && breaker.closed) breaker.open();
  });
  breaker.on("close", () => (run = 0));
  return breaker;
}

/**
 * sharedBucketRotation returns the one EventEmitter that rotates the rolling-window buckets of
 * every breaker with the same window, and a release function; the timer runs while anyone holds it.
 */
export function acquireBucketRotation(rollingWindowMs = 10_000): { rotation: EventEmitter; release: () => void } {
  let shared = rotations.get(rollingWindowMs);
  if (!shared) {
    const rotation = new EventEmitter();
    rotation.setMaxListeners(0);
    const timer = setInterval(() => rotation.emit("rotate"), rollingWindowMs / 10);
    timer.unref();
    shared = { rotation, timer, holders: 0 };
    rotations.set(rollingWindowMs, shared);
  }
  shared.holders++;
  const entry = shared;
  let released = false;
  return {
    rotation: entry.rotation,
    release() {
      if (released) return;
      released = true;
      if (--entry.holders === 0) {
        clearInterval(entry.timer);
        rotations.delete(rollingWindowMs);
      }
    },
  };
}

const rotations = new Map<number, { rotation: EventEmitter; timer: NodeJS.Timeout; holders: number }>();
