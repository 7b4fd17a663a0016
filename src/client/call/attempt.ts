import { Code, ConnectError } from "@connectrpc/connect";
import { attemptHeaders } from "../telemetry/tracing.js";
import type { Pick } from "../endpoints/endpoint-set.js";
import { classify, type Outcome } from "./outcome-classifier.js";
import type { AttemptKind, CallEnvironment, LogicalCall } from "./call.js";
import { attemptError, neverSent } from "../retry/policy.js";

/**
 * MeshAttempt is one attempt of a logical call on the endpoint a pick chose (grpc-js's
 * load-balancing call): its deadline, its headers, the request sent, and the one outcome
 * classification of how it ended. `finished` resolves to the attempt itself, its `response` or
 * `error`, `outcome` and `sent` filled in; it never rejects.
 *
 * Every unary call makes at least one: its state lives in fields and its work in methods (the
 * attempt is its own abort listener), rather than in closures and result objects made afresh
 * per call, which the hot path paid for in allocation and GC.
 */
export class MeshAttempt<R> {
  /** Aborts this attempt (and, for a stream, the open stream). Only streams and hedged calls have one: a plain unary attempt is aborted by the caller's own signal, and saves the cost. */
  readonly controller: AbortController | undefined;
  readonly started = performance.now();
  /** Settled once: load, metrics and health have been told (see `settleAttempt`). */
  settled = false;
  readonly finished: Promise<MeshAttempt<R>>;
  response: R | undefined;
  /** The attempt's error, normalized (see `attemptError`); undefined on success. */
  error: ConnectError | undefined;
  outcome: Outcome = "success";
  /** Whether the request may have reached the server (false: it provably never left). */
  sent = true;

  constructor(
    private readonly call: LogicalCall<R>,
    readonly pick: Pick,
    readonly kind: AttemptKind,
    readonly number: number,
    attemptTimeoutMs: number,
  ) {
    // Built first: caller headers that cannot be sent fail the call here, before the endpoint
    // counts the attempt, not as the endpoint's failure.
    const headers = attemptHeaders(call.header, call.traceContext);
    const remaining = call.deadline - performance.now();
    this.controller = call.opensStream || call.hedge ? new AbortController() : undefined;
    if (this.controller) call.signal?.addEventListener("abort", this, { once: true });
    pick.endpoint.load.started();
    // The attempt's bound: the transport's attempt timeout, or what is left of the call's
    // deadline when that is sooner (then a DEADLINE_EXCEEDED is the caller's, not the instance's).
    const deadlineWasCallers = remaining <= attemptTimeoutMs;
    const bound = Math.max(1, Math.floor(Math.min(remaining, attemptTimeoutMs)));
    // gRPC's grpc-timeout carries whole units: send whole milliseconds.
    const wireTimeout = call.opensStream ? (call.deadlineOnWire ? Math.max(1, Math.floor(remaining)) : undefined) : bound;
    this.finished = this.#run(headers, wireTimeout, bound, deadlineWasCallers);
  }

  /** The caller's signal aborted: abort this attempt with its reason. */
  handleEvent(): void {
    this.controller?.abort(this.call.signal?.reason);
  }

  /** Ends the caller-signal link; called once the attempt is over. */
  unlink(): void {
    if (this.controller) this.call.signal?.removeEventListener("abort", this);
  }

  async #run(headers: Headers | undefined, wireTimeout: number | undefined, bound: number, deadlineWasCallers: boolean): Promise<MeshAttempt<R>> {
    const { call, controller } = this;
    const endpoint = this.pick.endpoint;
    // A stream's opening is bounded here (its deadline on the wire, if any, is the whole call's).
    let openTimedOut = false;
    const openTimer = call.opensStream
      ? setTimeout(() => {
          openTimedOut = true;
          controller?.abort(new ConnectError(`stream did not open within ${bound} ms`, Code.DeadlineExceeded));
        }, bound)
      : undefined;
    try {
      this.response = await call.send(endpoint, wireTimeout, controller?.signal ?? call.signal, headers);
      // With no classifier of its own, an answer is a success (as `defaultClassifier` says), decided without building its AttemptResult.
      if (call.classifiers.length > 0) this.outcome = classify({ method: call.method, error: undefined, cancelled: false, deadlineWasCallers }, call.classifiers);
    } catch (caught) {
      const cancelled = !openTimedOut && (controller?.signal.aborted ?? call.signal?.aborted ?? false);
      this.error = openTimedOut
        ? new ConnectError(`stream to instance ${endpoint.instance.id} did not open within ${bound} ms`, Code.DeadlineExceeded, undefined, undefined, caught)
        : attemptError(caught, endpoint.instance.id, false, cancelled);
      this.outcome = classify({ method: call.method, error: this.error, cancelled, deadlineWasCallers }, call.classifiers);
      this.sent = !neverSent(caught, false);
    } finally {
      clearTimeout(openTimer);
    }
    return this;
  }
}

/**
 * settleAttempt ends an attempt's bookkeeping, once: the outstanding count and latency sample
 * (for a caller's fault or cancellation only a lower bound, which can never make the instance
 * look faster), the attempt metric, and the endpoint's health.
 */
export function settleAttempt(env: CallEnvironment, call: LogicalCall<unknown>, attempt: MeshAttempt<unknown>, outcome: Outcome, error: ConnectError | undefined, reportToHealth = true): void {
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

/** reportHealth tells the endpoint's health an attempt's outcome (a stream's, at its opening; settleAttempt does it for the rest). */
export function reportHealth(env: CallEnvironment, attempt: MeshAttempt<unknown>, outcome: Outcome, error: ConnectError | undefined): void {
  env.endpoints.finished(attempt.pick, outcome, error);
}
