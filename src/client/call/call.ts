import type { DescMethodStreaming, DescMethodUnary } from "@bufbuild/protobuf";
import type { Code, ConnectError } from "@connectrpc/connect";
import type { Context, Span } from "@opentelemetry/api";
import type { BackoffOptions } from "../retry/backoff.js";
import type { MeshEndpoint } from "../endpoints/endpoint.js";
import type { EndpointPool } from "../endpoints/endpoint-set.js";
import type { HedgeDelay } from "../retry/hedging.js";
import type { OutcomeClassifier } from "./outcome-classifier.js";
import type { RetryBudget } from "../retry/budget.js";

/*
 * The types one call is made of, shared by the retrying loop (retrying-call.ts), each attempt
 * (attempt.ts) and a stream's bookkeeping (tracked-stream.ts), so that none of them imports
 * another for its types.
 */

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

