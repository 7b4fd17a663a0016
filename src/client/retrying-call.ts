import type { DescMethodStreaming, DescMethodUnary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Context, Span } from "@opentelemetry/api";
import { backoffDelay, type BackoffOptions } from "./backoff.js";
import { injectTraceContext } from "./client-tracing.js";
import type { MeshEndpoint } from "./endpoint.js";
import type { EndpointSet, Pick } from "./endpoint-set.js";
import type { HedgeDelay } from "./hedging.js";
import { classify, type Outcome, type OutcomeClassifier } from "./outcome-classifier.js";
import { pushbackOf } from "./pushback.js";
import type { RetryBudget } from "./retry-budget.js";
import { attemptError, isRetryable, neverSent } from "./retry-policy.js";

type HeaderInit = ConstructorParameters<typeof Headers>[0];

/** What kind of attempt, on the span: the first, a retry after a failure, or a hedge. */
export type AttemptKind = "first" | "retry" | "hedge";

/** The shared parts of one transport that every call uses. */
export interface CallEnvironment {
  service: string;
  endpoints: EndpointSet;
  budget: RetryBudget;
  maxAttempts: number;
  backoff: BackoffOptions | undefined;
  attemptTimeoutMs: number;
  /** Counts a retry (metrics); `reason` is the code that caused it, or "hedge". */
  onRetry: (method: DescMethodUnary | DescMethodStreaming, reason: string) => void;
  onBudgetExhausted: () => void;
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
  classifiers: readonly (OutcomeClassifier | undefined)[];
  /** Hedging of this call, when on (idempotent unary methods only). */
  hedge: { delay: HedgeDelay; maxAttempts: number } | undefined;
  span: Span;
  traceContext: Context;
  /**
   * send makes one attempt on `endpoint`: `timeoutMs` for the wire (undefined: none), `signal`
   * aborts it (caller, lost hedge, bound on a stream's opening).
   */
  send(endpoint: MeshEndpoint, timeoutMs: number | undefined, signal: AbortSignal | undefined, headers: Headers): Promise<R>;
}

/** An attempt in flight or done. */
export interface Attempt {
  readonly pick: Pick;
  readonly kind: AttemptKind;
  readonly number: number;
  readonly started: number;
  /**
   * Aborts this attempt (and, for a stream, the open stream). Only streams and hedged calls
   * have one: a plain unary attempt is aborted by the caller's own signal, and saves the cost.
   */
  readonly controller: AbortController | undefined;
  /** Cleanup of the caller-signal link; called once the attempt is over. */
  readonly unlink: () => void;
  /** Settled once: load, metrics and health have been told. */
  settled: boolean;
}

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
export async function runCall<R>(env: CallEnvironment, call: LogicalCall<R>): Promise<Won<R>> {
  type Finished = { attempt: Attempt; response?: R; error?: ConnectError; outcome: Outcome; sent: boolean };
  const inFlight = new Map<Attempt, Promise<Finished>>();
  const maxAttempts = call.hedge ? Math.max(call.hedge.maxAttempts, call.replayable ? env.maxAttempts : 1) : call.replayable ? env.maxAttempts : 1;
  let tried: Set<MeshEndpoint> | undefined;
  let attempts = 0;
  let lastError: ConnectError | undefined;
  let hedging = call.hedge !== undefined;

  const launch = (kind: AttemptKind): boolean => {
    const pick = env.endpoints.pick(tried);
    if (!pick) return false;
    (tried ??= new Set()).add(pick.endpoint);
    const remaining = call.deadline - performance.now();
    attempts++;
    const controller = call.opensStream || call.hedge ? new AbortController() : undefined;
    const onCallerAbort = () => controller?.abort(call.signal?.reason);
    if (controller) call.signal?.addEventListener("abort", onCallerAbort, { once: true });
    const attempt: Attempt = {
      pick,
      kind,
      number: attempts,
      started: performance.now(),
      controller,
      unlink: () => call.signal?.removeEventListener("abort", onCallerAbort),
      settled: false,
    };
    pick.endpoint.load.started();
    // The attempt's bound: the transport's attempt timeout, or what is left of the call's
    // deadline when that is sooner (then a DEADLINE_EXCEEDED is the caller's, not the instance's).
    const deadlineWasCallers = remaining <= env.attemptTimeoutMs;
    const bound = Math.max(1, Math.floor(Math.min(remaining, env.attemptTimeoutMs)));
    // gRPC's grpc-timeout carries whole units: send whole milliseconds.
    const wireTimeout = call.opensStream ? (call.deadlineOnWire ? Math.max(1, Math.floor(remaining)) : undefined) : bound;
    const headers = new Headers(call.header);
    injectTraceContext(call.traceContext, headers);
    // A stream's opening is bounded here (its deadline on the wire, if any, is the whole call's).
    let openTimedOut = false;
    const openTimer = call.opensStream
      ? setTimeout(() => {
          openTimedOut = true;
          controller?.abort(new ConnectError(`stream did not open within ${bound} ms`, Code.DeadlineExceeded));
        }, bound)
      : undefined;
    const finished = (async (): Promise<Finished> => {
      try {
        const response = await call.send(pick.endpoint, wireTimeout, controller?.signal ?? call.signal, headers);
        return { attempt, response, outcome: classify({ method: call.method, error: undefined, cancelled: false, deadlineWasCallers }, call.classifiers), sent: true };
      } catch (caught) {
        const cancelled = !openTimedOut && (controller?.signal.aborted ?? call.signal?.aborted ?? false);
        let error = attemptError(caught, pick.endpoint.instance.id, false, cancelled);
        if (openTimedOut) error = new ConnectError(`stream to instance ${pick.endpoint.instance.id} did not open within ${bound} ms`, Code.DeadlineExceeded, undefined, undefined, caught);
        const outcome = classify({ method: call.method, error, cancelled, deadlineWasCallers }, call.classifiers);
        return { attempt, error, outcome, sent: !neverSent(caught, false) };
      } finally {
        clearTimeout(openTimer);
      }
    })();
    inFlight.set(attempt, finished);
    return true;
  };

  // Attempts still in flight when the call is decided are cancelled; each is settled when it
  // ends (as "cancelled": a lost hedge says nothing about its instance).
  const cancelOthers = (winner: Attempt | undefined) => {
    for (const [attempt, finished] of inFlight) {
      if (attempt === winner) continue;
      attempt.controller?.abort(new ConnectError("another attempt answered first", Code.Canceled));
      // Recorded now: the call's span ends before the cancelled attempt does.
      recordAttempt(call.span, attempt, Code.Canceled);
      void finished.then((late) => settleAttempt(env, call, late.attempt, late.outcome, late.error));
    }
    inFlight.clear();
  };

  if (!launch("first")) throw env.noInstanceError(undefined, undefined);
  try {
    for (;;) {
      // Wait for an attempt to finish, or for the moment to hedge.
      // Never later than half of what is left of the deadline: a percentile inflated by a stall
      // (or a fixed delay too long for this caller's deadline) must not leave no time to hedge.
      const hedgeAfter = hedging && attempts < maxAttempts ? Math.min(call.hedge!.delay.current(), Math.max(0, (call.deadline - performance.now()) / 2)) : undefined;
      let hedgeTimer: NodeJS.Timeout | undefined;
      const events: Promise<Finished | "hedge">[] = [...inFlight.values()];
      if (hedgeAfter !== undefined) events.push(new Promise((resolve) => (hedgeTimer = setTimeout(() => resolve("hedge"), hedgeAfter))));
      const event = await Promise.race(events);
      clearTimeout(hedgeTimer);

      if (event === "hedge") {
        if (call.deadline - performance.now() <= 0 || !env.budget.tryWithdraw()) {
          hedging = false; // no budget left: wait for what is in flight
          if (call.deadline - performance.now() > 0) env.onBudgetExhausted();
          continue;
        }
        if (launch("hedge")) env.onRetry(call.method, "hedge");
        else hedging = false; // no other instance to hedge on
        continue;
      }

      const { attempt, response, error, outcome, sent } = event;
      inFlight.delete(attempt);
      if (outcome === "success") {
        cancelOthers(attempt);
        if (!call.opensStream) settleAttempt(env, call, attempt, outcome, undefined);
        else reportHealth(env, attempt, outcome, undefined);
        call.hedge?.delay.observe(performance.now() - attempt.started);
        recordAttempt(call.span, attempt, 0);
        return { response: response as R, attempt, attempts };
      }
      settleAttempt(env, call, attempt, outcome, error);
      recordAttempt(call.span, attempt, error!.code);
      // A hedge that lost (or an attempt the caller cancelled) is not the call's error.
      if (outcome === "cancelled" && !call.signal?.aborted && inFlight.size > 0) continue;
      lastError = error;

      const pushback = pushbackOf(error!);
      const retryable =
        call.replayable &&
        !call.signal?.aborted &&
        outcome === "instance_failure" &&
        pushback !== "never" &&
        isRetryable(error!, call.method, sent);
      if (!retryable) {
        if (inFlight.size > 0 && outcome === "instance_failure") continue; // a hedge may still answer
        throw error;
      }
      if (attempts >= maxAttempts) {
        if (inFlight.size > 0) continue;
        throw error;
      }
      if (inFlight.size > 0 && pushback === undefined) {
        // Hedging: another attempt is in flight; the next hedge goes at once (gRPC's rule), paid
        // from the budget like any retry.
        if (env.budget.tryWithdraw() && launch("hedge")) env.onRetry(call.method, Code[error!.code] ?? "unknown");
        continue;
      }
      if (inFlight.size > 0) continue; // pushback: let the attempts in flight finish first
      if (!env.budget.tryWithdraw()) {
        env.onBudgetExhausted();
        throw error;
      }
      // A request that never left goes to the next instance at once; one that may have reached
      // an unwell instance waits the server's pushback, else a jittered backoff.
      const delay = pushback !== undefined ? pushback.retryAfterMs : sent ? backoffDelay(attempts, env.backoff) : 0;
      if (delay > 0) {
        if (performance.now() + delay >= call.deadline) throw error;
        await sleepUnlessAborted(delay, call.signal, error!);
      }
      if (call.deadline - performance.now() <= 0) throw new ConnectError(`deadline exceeded after ${attempts} attempts`, Code.DeadlineExceeded);
      env.onRetry(call.method, Code[error!.code] ?? "unknown");
      if (!launch("retry")) throw env.noInstanceError(tried, lastError);
    }
  } catch (caught) {
    cancelOthers(undefined);
    throw caught;
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
