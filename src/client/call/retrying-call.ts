import type { DescMethodStreaming, DescMethodUnary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Context, Span } from "@opentelemetry/api";
import { backoffDelay, type BackoffOptions } from "../retry/backoff.js";
import { MeshAttempt } from "./attempt.js";
import type { MeshEndpoint } from "../endpoints/endpoint.js";
import type { EndpointPool } from "../endpoints/endpoint-set.js";
import type { HedgeDelay } from "../retry/hedging.js";
import type { Outcome, OutcomeClassifier } from "./outcome-classifier.js";
import { pushbackOf } from "../retry/pushback.js";
import type { RetryBudget } from "../retry/budget.js";
import { isRetryable } from "../retry/policy.js";

type HeaderInit = ConstructorParameters<typeof Headers>[0];

/** What kind of attempt, on the span: the first, a retry after a failure, or a hedge. */
export type AttemptKind = "first" | "retry" | "hedge";

/** The shared parts of one transport that every call uses. */
export interface CallEnvironment {
  service: string;
  endpoints: EndpointPool;
  budget: RetryBudget;
  maxAttempts: number;
  backoff: BackoffOptions | undefined;
  attemptTimeoutMs: number;
  /** Counts a retry (metrics); `reason` is the code that caused it, or "hedge". */
  onRetry: (method: DescMethodUnary | DescMethodStreaming, reason: string) => void;
  onBudgetExhausted: () => void;
  /**
   * The codes worth another attempt once the request may have been processed, when a route of
   * the discovery chain sets its own (routing/compile.ts); undefined: the transport's policy
   * (UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED on instance failures). Either way only
   * for methods the proto marks idempotent, and a request that never left is always retried.
   */
  retryCodes?: ReadonlySet<Code> | undefined;
  /** Fails a call that found no endpoint to pick. */
  noInstanceError: (tried: ReadonlySet<MeshEndpoint> | undefined, last: ConnectError | undefined) => ConnectError;
}

/** One logical call, as the retrying loop runs it. */
export interface LogicalCall<R> {
  method: DescMethodUnary | DescMethodStreaming;
  /** The caller's signal. */
  signal: AbortSignal | undefined;
  /** When the call must end, in performance.now() ms. */
  deadline: number;
  /**
   * Whether the deadline goes on the wire (a unary call's always; a stream's only when the caller
   * set one or inherited one). A stream with none has only its opening bounded.
   */
  deadlineOnWire: boolean;
  /** Unary calls end with the attempt; a stream's attempt is still open when the loop returns. */
  opensStream: boolean;
  /** Whether a failed attempt may be replayed (a client stream cannot). */
  replayable: boolean;
  header: HeaderInit | undefined;
  classifiers: readonly OutcomeClassifier[];
  /** Hedging of this call, when on (idempotent unary methods only). */
  hedge: { delay: HedgeDelay; maxAttempts: number } | undefined;
  span: Span;
  traceContext: Context;
  /** The call's hash key for a consistent-hashing balancer (routing/hash-key.ts); undefined for none. */
  hashKey?: string | undefined;
  /**
   * send makes one attempt on `endpoint`: `timeoutMs` for the wire (undefined: none), `signal`
   * aborts it (caller, lost hedge, bound on a stream's opening); `headers` are the attempt's own
   * (undefined: none to send, see `attemptHeaders`).
   */
  send(endpoint: MeshEndpoint, timeoutMs: number | undefined, signal: AbortSignal | undefined, headers: Headers | undefined): Promise<R>;
}

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
 * settle with `settleAttempt` when the stream ends.
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

/**
 * settleAttempt ends an attempt's bookkeeping, once: the outstanding count and latency sample
 * (for a caller's fault or cancellation only a lower bound, which can never make the instance
 * look faster), the attempt metric, and the endpoint's health.
 */
export function settleAttempt(env: CallEnvironment, call: LogicalCall<unknown>, attempt: Attempt, outcome: Outcome, error: ConnectError | undefined, reportToHealth = true): void {
  if (attempt.settled) return;
  attempt.settled = true;
  attempt.unlink();
  const now = performance.now();
  const elapsed = now - attempt.started;
  const counts = outcome === "success" || outcome === "instance_failure";
  if (counts) attempt.pick.endpoint.load.finished(elapsed, now);
  else attempt.pick.endpoint.load.finishedUnanswered(elapsed, now);
  env.endpoints.series(attempt.pick.endpoint)?.observeAttempt(call.method, error?.code ?? 0, elapsed / 1000);
  if (reportToHealth) reportHealth(env, attempt, outcome, error);
}

function reportHealth(env: CallEnvironment, attempt: Attempt, outcome: Outcome, error: ConnectError | undefined): void {
  env.endpoints.finished(attempt.pick, outcome, error);
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
