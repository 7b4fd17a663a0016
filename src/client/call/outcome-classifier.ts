import type { DescMethod } from "@bufbuild/protobuf";
import { Code, createContextKey, type ConnectError } from "@connectrpc/connect";
import { pushbackOf } from "../retry/pushback.js";

/**
 * Outcome is the one verdict on an attempt that the breaker, the retry policy and the load
 * tracking all read (Finagle's ResponseClassifier):
 * - `success`: the instance answered well;
 * - `instance_failure`: the instance is unwell (unreachable, broken, overloaded, too slow for the
 *   transport's own attempt timeout): counts against it, may be retried elsewhere;
 * - `caller_fault`: an answer about the request (invalid, too large, not found, denied) or a
 *   deadline the caller set too tight: a healthy instance gives it too, so it counts neither for
 *   nor against the instance, and another instance would say the same (no retry);
 * - `cancelled`: the caller (or a hedge that already won) gave up: says nothing about the instance.
 */
export type Outcome = "success" | "instance_failure" | "caller_fault" | "cancelled";

/** What a classifier sees of one finished attempt. */
export interface AttemptResult {
  readonly method: DescMethod;
  /** The attempt's error, normalized (a broken connection is UNAVAILABLE); undefined on success. */
  readonly error: ConnectError | undefined;
  /** The caller aborted the call, or another attempt of the same call already won. */
  readonly cancelled: boolean;
  /**
   * The attempt's deadline was what was left of the caller's deadline, not the transport's
   * `attemptTimeoutMs`: a DEADLINE_EXCEEDED then says the caller's budget ran out.
   */
  readonly deadlineWasCallers: boolean;
}

/**
 * OutcomeClassifier decides an attempt's outcome; `undefined` leaves the decision to the next
 * classifier (per call -> per method -> per transport -> `defaultClassifier`).
 *
 * ```ts
 * // NOT_FOUND from this service means "the replica is behind": try another one.
 * const classifier: OutcomeClassifier = ({ error }) => (error?.code === Code.NotFound ? "instance_failure" : undefined);
 * createMeshTransport({ service: "catalog", consul, methods: { GetItem: { classifier } } });
 * ```
 */
export type OutcomeClassifier = (attempt: AttemptResult) => Outcome | undefined;

/**
 * outcomeClassifierKey overrides the classifier for one call, through Connect's context values:
 *
 * ```ts
 * await client.getItem(request, { contextValues: createContextValues().set(outcomeClassifierKey, classifier) });
 * ```
 */
export const outcomeClassifierKey = createContextKey<OutcomeClassifier | undefined>(undefined, { description: "meshkit outcome classifier" });

/** Codes that say the instance is unwell, whatever the request. */
const instanceFailureCodes = new Set<Code>([Code.Unavailable, Code.DeadlineExceeded, Code.Internal, Code.Unknown, Code.DataLoss]);

/**
 * defaultClassifier: success on no error; `cancelled` when the caller gave up; DEADLINE_EXCEEDED
 * is the instance's only when the transport's own attempt timeout was the limit;
 * RESOURCE_EXHAUSTED is the instance's only when it says it sheds load (it sent
 * `grpc-retry-pushback-ms`), otherwise a request too large or a quota the caller ran out of;
 * UNAVAILABLE, INTERNAL, UNKNOWN, DATA_LOSS are the instance's; every other code is an answer
 * about the request.
 */
export const defaultClassifier = (attempt: AttemptResult): Outcome => {
  const error = attempt.error;
  if (!error) return "success";
  if (attempt.cancelled) return "cancelled";
  if (error.code === Code.DeadlineExceeded) return attempt.deadlineWasCallers ? "caller_fault" : "instance_failure";
  if (error.code === Code.ResourceExhausted) return pushbackOf(error) !== undefined ? "instance_failure" : "caller_fault";
  return instanceFailureCodes.has(error.code) ? "instance_failure" : "caller_fault";
};

/** classify runs the classifiers in order, the first that decides wins, then the default. */
export function classify(attempt: AttemptResult, classifiers: readonly OutcomeClassifier[]): Outcome {
  for (const classifier of classifiers) {
    const outcome = classifier(attempt);
    if (outcome) return outcome;
  }
  return defaultClassifier(attempt);
}
