import { AsyncLocalStorage } from "node:async_hooks";
import type { Interceptor } from "@connectrpc/connect";

/**
 * keepContextInStreams returns `interceptors` arranged so that a streamed response is read, step
 * by step, in the async context its producer was called in: the handler's async-generator body
 * in the context the innermost interceptor set up, and each interceptor's own stream wrapper in
 * the context its caller set up.
 *
 * Why: connect calls a server-streaming handler, which only creates the generator; the body runs
 * later, on each `next()` that connect's response writer makes, outside every interceptor. So
 * the deadline (`runWithDeadline`), the OpenTelemetry span and anything else an interceptor keeps
 * in an AsyncLocalStorage would be lost to the body: its onward calls would start new traces with
 * no deadline, and its log lines would carry no trace id. `AsyncLocalStorage.snapshot()` captures
 * every store at once, so this works for interceptors we do not know about too.
 *
 * Unary and client-streaming calls have one response message, produced inside the call: they
 * pass through untouched.
 */
export function keepContextInStreams(interceptors: readonly Interceptor[]): Interceptor[] {
  return [...interceptors.flatMap((interceptor) => [keepContext, interceptor]), keepContext];
}

const keepContext: Interceptor = (next) => (request) => {
  const kind = request.method.methodKind;
  if (kind !== "server_streaming" && kind !== "bidi_streaming") return next(request);
  const inCallContext = AsyncLocalStorage.snapshot();
  return next(request).then((response) => (response.stream ? { ...response, message: stepsWithin(inCallContext, response.message) } : response));
};

/** `messages`, each step of whose iteration (next, return, throw) runs inside `run`. */
function stepsWithin<T>(run: <R>(step: () => R) => R, messages: AsyncIterable<T>): AsyncIterable<T> {
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
