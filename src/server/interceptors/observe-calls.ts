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
  // Plain promises and a plain iterator rather than an async function and an async generator:
  // these wrappers run once per call and once per streamed message on every observing
  // interceptor, and each generator layer cost about a microsecond per message
  // (docs/benchmarks.md, server calls). For the same reason adjacent observing interceptors
  // (tracing, metrics, error mapping) share one stream wrapper instead of stacking three.
  return (next) => (request) => {
    let observer: CallObserver;
    try {
      observer = start(request);
    } catch (error) {
      return Promise.reject(error);
    }
    const fail = (error: unknown) => {
      observer.end?.(error);
      return observer.mapError ? observer.mapError(error) : error;
    };
    let pending: ReturnType<typeof next>;
    try {
      pending = observer.run ? observer.run(() => next(request)) : next(request);
    } catch (error) {
      return Promise.reject(fail(error));
    }
    return pending.then(
      (response) => {
        if (!response.stream) {
          observer.end?.(undefined);
          return response;
        }
        const stage: StreamObserver = { end: observer.end, fail };
        // Not read yet (the response has not reached the caller): join the inner wrapper.
        const inner = (response.message as Partial<ObservedStream<unknown>>)[observers];
        if (inner) {
          inner.push(stage);
          return response;
        }
        return { ...response, message: observedStream(response.message, [stage]) };
      },
      (error: unknown) => {
        throw fail(error);
      },
    );
  };
}

/** One observing interceptor's part in a stream: innermost first. */
interface StreamObserver {
  end: ((error: unknown) => void) | undefined;
  /** Reports the error and returns the one the next (outer) observer and the caller see. */
  fail: (error: unknown) => unknown;
}

const observers = Symbol("meshkit stream observers");

type ObservedStream<T> = AsyncIterable<T> & { [observers]: StreamObserver[] };

/**
 * The messages of `messages`, reporting their end once to each of `stages` (innermost first):
 * when they run out, fail (each stage maps the error in turn), or are abandoned early (`return`,
 * the caller went away).
 */
function observedStream<T>(messages: AsyncIterable<T>, stages: StreamObserver[]): ObservedStream<T> {
  const end = (error: unknown) => {
    if (error === undefined) {
      for (const stage of stages) stage.end?.(undefined);
      return undefined;
    }
    let seen: unknown = error;
    for (const stage of stages) seen = stage.fail(seen);
    return seen;
  };
  return {
    [observers]: stages,
    [Symbol.asyncIterator](): AsyncIterator<T> {
      const iterator = messages[Symbol.asyncIterator]();
      let over = false;
      const finish = (error: unknown) => {
        if (over) return error;
        over = true;
        return end(error);
      };
      return {
        next: () =>
          iterator.next().then(
            (result) => {
              if (result.done) finish(undefined);
              return result;
            },
            (error: unknown) => {
              throw over ? error : finish(error);
            },
          ),
        return: (value?: unknown) => {
          finish(undefined);
          return iterator.return ? iterator.return(value) : Promise.resolve({ done: true as const, value: value as T });
        },
        throw: (error?: unknown) => {
          const mapped = finish(error);
          return iterator.throw ? iterator.throw(error) : Promise.reject(mapped);
        },
      };
    },
  };
}
