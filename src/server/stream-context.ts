import { AsyncLocalStorage } from "node:async_hooks";
import { createContextKey, type ContextValues, type Interceptor } from "@connectrpc/connect";

/**
 * Why this module exists: connect calls a server-streaming handler, which only creates the
 * generator; the body runs later, on each `next()` that the response writer makes, outside every
 * interceptor. So the deadline (`runWithDeadline`), the OpenTelemetry span and anything else an
 * interceptor keeps in an AsyncLocalStorage would be lost to the body: its onward calls would
 * start new traces with no deadline, and its log lines would carry no trace id.
 *
 * The fix has two halves. The innermost interceptor records the async context the handler is
 * called in (`AsyncLocalStorage.snapshot()` captures every store at once, so this works for
 * interceptors we do not know about too). Then whoever reads the response stream reads it in that
 * context: every step of the iteration, through every interceptor's stream wrapper down to the
 * handler's body, runs there. That context holds everything each interceptor set up for the call.
 *
 * Reading in context costs one context switch for the whole call when the reader is ours (the
 * lean gRPC path runs its write loop inside it, and every `await` in the loop keeps it), and one
 * per message when it is not (connect-node's writer, through `keepContextInStreams`). Switching
 * around every interceptor's wrapper instead cost about 1.4 us per message per interceptor:
 * 4.6x the CPU of a 100-message stream with the service's five (docs/benchmarks.md).
 *
 * Unary and client-streaming calls have one response message, produced inside the call: they
 * pass through untouched.
 */

/** Runs a step in the context a streaming handler was called in. */
export type StreamContext = <R>(step: () => R) => R;

const streamContextKey = createContextKey<StreamContext | undefined>(undefined, { description: "meshkit stream handler context" });

/**
 * recordStreamContext returns `interceptors` with one more, innermost, that records the context
 * a streaming handler is called in; `streamContextOf` gives it to the reader of the response.
 */
export function recordStreamContext(interceptors: readonly Interceptor[]): Interceptor[] {
  return [...interceptors, recordContext];
}

/** The context recorded for this call's streaming handler (see `recordStreamContext`), if any. */
export function streamContextOf(values: ContextValues): StreamContext | undefined {
  return values.get(streamContextKey);
}

/**
 * keepContextInStreams returns `interceptors` arranged for a reader we do not control
 * (connect-node's response writer): the context is recorded innermost, and the outermost
 * interceptor makes each step of the response stream run inside it.
 */
export function keepContextInStreams(interceptors: readonly Interceptor[]): Interceptor[] {
  return [readInContext, ...recordStreamContext(interceptors)];
}

const isStreamingResponse = (kind: string) => kind === "server_streaming" || kind === "bidi_streaming";

const recordContext: Interceptor = (next) => (request) => {
  if (isStreamingResponse(request.method.methodKind)) request.contextValues.set(streamContextKey, AsyncLocalStorage.snapshot());
  return next(request);
};

const readInContext: Interceptor = (next) => (request) => {
  if (!isStreamingResponse(request.method.methodKind)) return next(request);
  return next(request).then((response) => {
    const inContext = streamContextOf(request.contextValues);
    return response.stream && inContext ? { ...response, message: stepsWithin(inContext, response.message) } : response;
  });
};

/** `messages`, each step of whose iteration (next, return, throw) runs inside `run`. */
function stepsWithin<T>(run: StreamContext, messages: AsyncIterable<T>): AsyncIterable<T> {
  return {
    [Symbol.asyncIterator]() {
      const iterator = run(() => messages[Symbol.asyncIterator]());
      const steps: AsyncIterator<T> = { next: (...args) => run(() => iterator.next(...args)) };
      if (iterator.return) steps.return = (value) => run(() => iterator.return!(value));
      if (iterator.throw) steps.throw = (error) => run(() => iterator.throw!(error));
      return steps;
    },
  };
}
