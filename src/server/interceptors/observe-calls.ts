import type { Interceptor, StreamRequest, UnaryRequest } from "@connectrpc/connect";

/** What an interceptor built with `observeCalls` does around one call. */
export interface CallObserver {
  /** Called once when the call is over: the unary response returned, the stream was read to its end, or it failed. */
  end?(error: unknown): void;
  /** Runs the rest of the chain; default: as it is (tracing runs it inside the span's context). */
  run?<T>(next: () => T): T;
  /** The error the caller sees instead of `error`; default: `error` itself. */
  mapError?(error: unknown): unknown;
}

/**
 * observeCalls builds a server interceptor from `start`, called when a call begins. The part all
 * our observing interceptors share: a streaming response ends when its messages do, not when the
 * handler returns, so the stream is wrapped to report its end (and map its error) there.
 */
export function observeCalls(start: (request: UnaryRequest | StreamRequest) => CallObserver): Interceptor {
  return (next) => async (request) => {
    const observer = start(request);
    const fail = (error: unknown) => {
      observer.end?.(error);
      return observer.mapError ? observer.mapError(error) : error;
    };
    let response: Awaited<ReturnType<typeof next>>;
    try {
      response = await (observer.run ? observer.run(() => next(request)) : next(request));
    } catch (error) {
      throw fail(error);
    }
    if (!response.stream) {
      observer.end?.(undefined);
      return response;
    }
    const messages = response.message;
    return {
      ...response,
      message: (async function* () {
        let failed = false;
        try {
          yield* messages;
        } catch (error) {
          failed = true;
          throw fail(error);
        } finally {
          // Also when the stream is abandoned early (the caller went away): the call is over.
          if (!failed) observer.end?.(undefined);
        }
      })(),
    };
  };
}
