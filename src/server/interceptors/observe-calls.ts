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

type Start = (request: UnaryRequest | StreamRequest) => CallObserver;

/** The starts of an interceptor built by `observeCalls`, outermost first: what `fuseObservers` joins. */
const startsOf = Symbol("meshkit observer starts");
type ObservingInterceptor = Interceptor & { [startsOf]: readonly Start[] };

/**
 * observeCalls builds a server interceptor from `start`, called when a call begins. The part all
 * our observing interceptors share: a streaming response ends when its messages do, not when the
 * handler returns, so the stream is wrapped to report its end (and map its error) there.
 */
export function observeCalls(start: Start): Interceptor {
  return observing([start]);
}

/**
 * fuseObservers returns `interceptors` with each run of adjacent `observeCalls` interceptors
 * (tracing, metrics, error mapping and the deadline, in runService's chain) made one interceptor that starts
 * each observer in turn, inside the ones before it, and reports to them innermost first: what
 * the separate layers did, with one promise and one continuation per call instead of one per
 * layer. One difference: the one continuation runs inside every fused observer's `run`, so an
 * outer observer's `end` sees the inner ones' context too (tracing's span stays visible to all).
 * Any other interceptor stays where it was, between the runs.
 */
export function fuseObservers(interceptors: readonly Interceptor[]): Interceptor[] {
  const fused: Interceptor[] = [];
  for (const interceptor of interceptors) {
    const starts = (interceptor as Partial<ObservingInterceptor>)[startsOf];
    const previous = fused.at(-1) as Partial<ObservingInterceptor> | undefined;
    const before = previous?.[startsOf];
    if (starts && before) fused[fused.length - 1] = observing([...before, ...starts]);
    else fused.push(interceptor);
  }
  return fused;
}

function observing(starts: readonly Start[]): ObservingInterceptor {
  // A class per call rather than closures: this runs on every call, and each layer of closures
  // and promise callbacks cost about a microsecond per call (docs/benchmarks.md, server calls).
  const interceptor: Interceptor = (next) => (request) => new ObservedCall(starts, request, next).begin();
  return Object.assign(interceptor, { [startsOf]: starts });
}

type Next = Parameters<Interceptor>[0];

/** One call through a run of observers: those started so far, outermost first. */
class ObservedCall {
  readonly #observers: CallObserver[] = [];

  constructor(
    private readonly starts: readonly Start[],
    private readonly request: UnaryRequest | StreamRequest,
    private readonly next: Next,
  ) {}

  begin(): ReturnType<Next> {
    try {
      return this.#from(0);
    } catch (error) {
      return Promise.reject(this.#fail(error));
    }
  }

  /**
   * Starts observer `index` inside the ones before it (`run`, the tracing span's context), as
   * nested layers would; past the last, runs the rest of the chain. The continuation is attached
   * in there too, so that every observer's `end` and `mapError` runs inside every `run` (the
   * error log line carries the trace id).
   */
  #from(index: number): ReturnType<Next> {
    if (index === this.starts.length) {
      let pending: ReturnType<Next>;
      try {
        pending = this.next(this.request);
      } catch (error) {
        return Promise.reject(this.#fail(error));
      }
      return pending.then(
        (response) => this.#answered(response),
        (error: unknown) => {
          throw this.#fail(error);
        },
      );
    }
    let observer: CallObserver;
    try {
      observer = this.starts[index]!(this.request);
    } catch (error) {
      return Promise.reject(this.#fail(error));
    }
    this.#observers.push(observer);
    return observer.run ? observer.run(() => this.#from(index + 1)) : this.#from(index + 1);
  }

  /** Reports `error` to the observers started, innermost first, each mapping it for the next; returns what the caller sees. */
  #fail(error: unknown): unknown {
    let seen = error;
    for (let i = this.#observers.length - 1; i >= 0; i--) seen = failOne(this.#observers[i]!, seen);
    return seen;
  }

  #answered(response: Awaited<ReturnType<Next>>): Awaited<ReturnType<Next>> {
    const started = this.#observers;
    if (!response.stream) {
      for (let i = started.length - 1; i >= 0; i--) started[i]!.end?.(undefined);
      return response;
    }
    const stages: StreamObserver[] = [];
    for (let i = started.length - 1; i >= 0; i--) {
      const observer = started[i]!;
      if (observer.end || observer.mapError) stages.push({ end: observer.end?.bind(observer), fail: (error) => failOne(observer, error) });
    }
    // Nobody to tell how the stream ends (a deadline alone): no wrapper.
    if (stages.length === 0) return response;
    // Not read yet (the response has not reached the caller): join the inner wrapper.
    const inner = (response.message as Partial<ObservedStream<unknown>>)[observers];
    if (inner) {
      inner.push(...stages);
      return response;
    }
    return { ...response, message: observedStream(response.message, stages) };
  }
}

function failOne(observer: CallObserver, error: unknown): unknown {
  observer.end?.(error);
  return observer.mapError ? observer.mapError(error) : error;
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
 * the caller went away). A plain iterator rather than an async generator, and one wrapper for
 * all the observers of a stream: each generator layer cost about a microsecond per message
 * (docs/benchmarks.md, server calls).
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
      // Made once per stream, not per message: each message's step is then one promise.
      const stepped = (result: IteratorResult<T>) => {
        if (result.done) finish(undefined);
        return result;
      };
      const failed = (error: unknown) => {
        throw over ? error : finish(error);
      };
      return {
        next: () => iterator.next().then(stepped, failed),
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
