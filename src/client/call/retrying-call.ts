import { Code, ConnectError } from "@connectrpc/connect";
import type { Span } from "@opentelemetry/api";
import { backoffDelay } from "../retry/backoff.js";
import { MeshAttempt, reportHealth, settleAttempt } from "./attempt.js";
import type { AttemptKind, CallEnvironment, LogicalCall } from "./call.js";
import type { MeshEndpoint } from "../endpoints/endpoint.js";
import { pushbackOf } from "../retry/pushback.js";
import { isRetryable } from "../retry/policy.js";

/** An attempt in flight or done (see attempt.ts). */
export type Attempt = MeshAttempt<unknown>;

/** The winning attempt and its answer. */
export interface Won<R> {
  response: R;
  attempt: Attempt;
  attempts: number;
}

/**
 * runCall runs one logical call: attempts on instances the endpoint set picks, each with its own
 * deadline, retried after an instance failure (on another instance, after backoff or the
 * server's pushback, under the retry budget) and, when hedging is on, hedged on another instance
 * after a delay; the first success wins and the rest are cancelled. Every attempt's outcome is
 * decided once, by the classifiers, and that one verdict feeds the endpoint's health, its load
 * and the retry decision.
 *
 * A unary call's winning attempt is settled here; a stream's is left open for the caller to
 * settle with `settleAttempt` (attempt.ts) when the stream ends.
 */
export function runCall<R>(env: CallEnvironment, call: LogicalCall<R>): Promise<Won<R>> {
  return new RetryingCall(env, call).run();
}

/**
 * RetryingCall is the state of one `runCall`: the attempts in flight, the endpoints tried, the
 * attempt count. A class, so that a call allocates one object for it instead of a closure per
 * step (every unary call runs through here).
 */
class RetryingCall<R> {
  /** In launch order. An array: a call has a few at most, and indexing it makes no iterator. */
  readonly #inFlight: MeshAttempt<R>[] = [];
  readonly #maxAttempts: number;
  /** The endpoints tried, made at the second attempt (the first only needs `#first`). */
  #tried: Set<MeshEndpoint> | undefined;
  #first: MeshEndpoint | undefined;
  #attempts = 0;
  #hedging: boolean;

  constructor(
    private readonly env: CallEnvironment,
    private readonly call: LogicalCall<R>,
  ) {
    const retries = call.replayable ? env.maxAttempts : 1;
    this.#maxAttempts = call.hedge ? Math.max(call.hedge.maxAttempts, retries) : retries;
    this.#hedging = call.hedge !== undefined;
  }

  #launch(kind: AttemptKind): boolean {
    if (this.#first && !this.#tried) this.#tried = new Set([this.#first]);
    const pick = this.env.endpoints.pick(this.#tried, this.call.hashKey);
    if (!pick) return false;
    if (this.#tried) this.#tried.add(pick.endpoint);
    else this.#first = pick.endpoint;
    this.#attempts++;
    this.#inFlight.push(new MeshAttempt(this.call, pick, kind, this.#attempts, this.env.attemptTimeoutMs));
    return true;
  }

  /**
   * Attempts still in flight when the call is decided are cancelled; each is settled when it
   * ends (as "cancelled": a lost hedge says nothing about its instance).
   */
  #cancelOthers(winner: Attempt | undefined): void {
    for (let i = 0; i < this.#inFlight.length; i++) {
      const attempt = this.#inFlight[i]!;
      if (attempt === winner) continue;
      attempt.controller?.abort(new ConnectError("another attempt answered first", Code.Canceled));
      // Recorded now: the call's span ends before the cancelled attempt does.
      recordAttempt(this.call.span, attempt, Code.Canceled);
      void attempt.finished.then((late) => settleAttempt(this.env, this.call, late, late.outcome, late.error));
    }
    this.#inFlight.length = 0;
  }

  /** The next attempt to finish, or "hedge" when the moment to hedge comes first. */
  #next(): Promise<MeshAttempt<R> | "hedge"> {
    const call = this.call;
    // Never later than half of what is left of the deadline: a percentile inflated by a stall
    // (or a fixed delay too long for this caller's deadline) must not leave no time to hedge.
    const hedgeAfter = this.#hedging && this.#attempts < this.#maxAttempts ? Math.min(call.hedge!.delay.current(), Math.max(0, (call.deadline - performance.now()) / 2)) : undefined;
    // One attempt in flight and no hedge to wait for, the common case: its own promise, with no
    // race to build.
    if (hedgeAfter === undefined && this.#inFlight.length === 1) return this.#inFlight[0]!.finished;
    return this.#race(hedgeAfter);
  }

  async #race(hedgeAfter: number | undefined): Promise<MeshAttempt<R> | "hedge"> {
    let hedgeTimer: NodeJS.Timeout | undefined;
    const events: Promise<MeshAttempt<R> | "hedge">[] = this.#inFlight.map((attempt) => attempt.finished);
    if (hedgeAfter !== undefined) events.push(new Promise((resolve) => (hedgeTimer = setTimeout(() => resolve("hedge"), hedgeAfter))));
    try {
      return await Promise.race(events);
    } finally {
      clearTimeout(hedgeTimer);
    }
  }

  async run(): Promise<Won<R>> {
    const { env, call } = this;
    const inFlight = this.#inFlight;
    if (!this.#launch("first")) throw env.noInstanceError(undefined, undefined);
    let lastError: ConnectError | undefined;
    try {
      for (;;) {
        // Wait for an attempt to finish, or for the moment to hedge.
        const event = await this.#next();

        if (event === "hedge") {
          if (call.deadline - performance.now() <= 0 || !env.budget.tryWithdraw()) {
            this.#hedging = false; // no budget left: wait for what is in flight
            if (call.deadline - performance.now() > 0) env.onBudgetExhausted();
            continue;
          }
          if (this.#launch("hedge")) env.onRetry(call.method, "hedge");
          else this.#hedging = false; // no other instance to hedge on
          continue;
        }

        const attempt = event;
        const { outcome, sent } = attempt;
        const index = inFlight.indexOf(attempt);
        if (index >= 0) inFlight.splice(index, 1);
        if (outcome === "success") {
          this.#cancelOthers(attempt);
          if (!call.opensStream) settleAttempt(env, call, attempt, outcome, undefined);
          else reportHealth(env, attempt, outcome, undefined);
          call.hedge?.delay.observe(performance.now() - attempt.started);
          recordAttempt(call.span, attempt, 0);
          return { response: attempt.response as R, attempt, attempts: this.#attempts };
        }
        const error = attempt.error!;
        settleAttempt(env, call, attempt, outcome, error);
        recordAttempt(call.span, attempt, error.code);
        // A hedge that lost (or an attempt the caller cancelled) is not the call's error.
        if (outcome === "cancelled" && !call.signal?.aborted && inFlight.length > 0) continue;
        lastError = error;

        const pushback = pushbackOf(error);
        const retryable =
          call.replayable &&
          !call.signal?.aborted &&
          pushback !== "never" &&
          (env.retryCodes === undefined
            ? outcome === "instance_failure" && isRetryable(error, call.method, sent)
            : (outcome === "instance_failure" || (outcome === "caller_fault" && env.retryCodes.has(error.code))) && isRetryable(error, call.method, sent, env.retryCodes));
        if (!retryable) {
          if (inFlight.length > 0 && outcome === "instance_failure") continue; // a hedge may still answer
          throw error;
        }
        if (this.#attempts >= this.#maxAttempts) {
          if (inFlight.length > 0) continue;
          throw error;
        }
        if (inFlight.length > 0 && pushback === undefined) {
          // Hedging: another attempt is in flight; the next hedge goes at once (gRPC's rule), paid
          // from the budget like any retry.
          if (env.budget.tryWithdraw() && this.#launch("hedge")) env.onRetry(call.method, Code[error.code] ?? "unknown");
          continue;
        }
        if (inFlight.length > 0) continue; // pushback: let the attempts in flight finish first
        if (!env.budget.tryWithdraw()) {
          env.onBudgetExhausted();
          throw error;
        }
        // A request that never left goes to the next instance at once; one that may have reached
        // an unwell instance waits the server's pushback, else a jittered backoff.
        const delay = pushback !== undefined ? pushback.retryAfterMs : sent ? backoffDelay(this.#attempts, env.backoff) : 0;
        if (delay > 0) {
          if (performance.now() + delay >= call.deadline) throw error;
          await sleepUnlessAborted(delay, call.signal, error);
        }
        if (call.deadline - performance.now() <= 0) throw new ConnectError(`deadline exceeded after ${this.#attempts} attempts`, Code.DeadlineExceeded);
        env.onRetry(call.method, Code[error.code] ?? "unknown");
        if (!this.#launch("retry")) throw env.noInstanceError(this.#tried, lastError);
      }
    } catch (caught) {
      this.#cancelOthers(undefined);
      throw caught;
    }
  }
}

function recordAttempt(span: Span, attempt: Attempt, code: number): void {
  // A span that records nothing (no SDK installed) would drop the event: skip building it.
  if (!span.isRecording()) return;
  const instance = attempt.pick.endpoint.instance;
  span.addEvent("attempt", {
    attempt: attempt.number,
    "meshkit.attempt.kind": attempt.kind,
    "meshkit.instance": instance.id,
    "server.address": instance.address,
    "server.port": instance.port,
    "rpc.grpc.status_code": code,
  });
  span.setAttribute("server.address", instance.address);
  span.setAttribute("server.port", instance.port);
}

function sleepUnlessAborted(ms: number, signal: AbortSignal | undefined, error: ConnectError): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(error);
    const onAbort = () => {
      clearTimeout(timer);
      reject(error);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
