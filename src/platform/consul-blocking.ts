import { EventEmitter } from "node:events";
import { setTimeout as sleep } from "node:timers/promises";
import type { ConsulClient } from "./consul.js";

/** BlockingQueryOptions tune one blocking query loop. */
export interface BlockingQueryOptions {
  /** Longest a query waits for a change, in seconds. Default 30. */
  waitSeconds?: number;
  /** Least time between two queries, in ms (Consul may answer early on unrelated churn). Default 100. */
  minQueryIntervalMs?: number;
  /** Longest wait between retries while Consul is unreachable or answers an error, in ms. Default 10 000. */
  maxRetryDelayMs?: number;
}

/** What each answer carries besides its body. */
export interface BlockingAnswer<T> {
  body: T;
  /** Response headers, lower-case names (`x-consul-index`, `x-consul-default-acl-policy`, ...). */
  headers: Readonly<Record<string, string | undefined>>;
  /**
   * The agent's index went below one it reported before: it lost its state (restarted without
   * its data), so this answer may lack what was written before and not written again yet.
   */
  reset: boolean;
}

/** BlockingQuery is a running loop; it keeps the last answer's age and the last error. */
export interface BlockingQuery {
  /** Milliseconds since Consul last answered (Infinity before the first answer). */
  stalenessMs(): number;
  /** The error of the last failed query, cleared by the next answer. */
  readonly lastError: Error | undefined;
  close(): void;
}

/**
 * startBlockingQuery runs `GET /v1/<path>` as a Consul blocking query (index + wait) for as long
 * as it is open, and calls `onAnswer` with every answer (the first one too, and again when Consul
 * wakes the query with nothing new: compare if that matters). While the agent is unreachable or
 * answers an error, nothing is called: what the caller built from the last answer keeps applying
 * (fail static), and the loop retries with jittered exponential backoff. An index that goes
 * backwards (an agent restarted without its data) restarts from 0, as Consul's docs ask.
 *
 * It goes through the `consul` package's request path (its `_get`, not public in its typings) so
 * that the client's address, TLS agent and ACL token apply as for every other Consul call here;
 * the package has no method for the Connect endpoints this serves.
 */
export function startBlockingQuery<T>(
  consul: ConsulClient,
  request: { path: string; query?: Record<string, string> },
  onAnswer: (answer: BlockingAnswer<T>) => void,
  options: BlockingQueryOptions & { onError?: (error: Error) => void } = {},
): BlockingQuery {
  const { waitSeconds = 30, minQueryIntervalMs = 100, maxRetryDelayMs = 10_000 } = options;
  const stop = new AbortController();
  const cancel = Object.assign(new EventEmitter(), { includeResponse: true });
  const waitMs = waitSeconds * 1000;
  // Consul adds up to wait/16 of jitter; past that and a margin the connection is presumed lost.
  const httpTimeoutMs = waitMs + waitMs / 16 + 2000;
  const client = consul as unknown as {
    _get: (req: unknown, middleware: unknown) => Promise<[{ headers: Record<string, string | undefined> }, T]>;
    _defaults?: { token?: string };
  };
  const token = client._defaults?.token;
  const state = { lastAnswerAt: -Infinity, lastError: undefined as Error | undefined };

  void (async () => {
    let index = 0n;
    let highestIndex = 0n;
    let failures = 0;
    while (!stop.signal.aborted) {
      const startedAt = performance.now();
      try {
        const [response, body] = await client._get(
          {
            name: `blocking ${request.path}`,
            path: request.path,
            query: { ...request.query, index: index.toString(), wait: `${waitSeconds}s` },
            headers: token ? { "x-consul-token": token } : {},
            timeout: httpTimeoutMs,
            ctx: cancel,
          },
          // papi's middleware: an HTTP error fails the call; an answer comes with its response.
          (call: { err?: Error; res: { body: unknown } }, next: (stop: false, error?: Error, value?: unknown) => void) =>
            call.err ? next(false, call.err) : next(false, undefined, [call.res, call.res.body]),
        );
        failures = 0;
        state.lastAnswerAt = performance.now();
        state.lastError = undefined;
        const reported = nextIndex(0n, response.headers["x-consul-index"]);
        const reset = reported < highestIndex;
        highestIndex = reported;
        index = nextIndex(index, response.headers["x-consul-index"]);
        onAnswer({ body, headers: response.headers, reset });
      } catch (error) {
        if (stop.signal.aborted) return;
        failures++;
        state.lastError = error instanceof Error ? error : new Error(String(error));
        options.onError?.(state.lastError);
        index = 0n;
        // Full jitter between 100 ms and the ceiling, doubling per failure.
        const ceiling = Math.min(maxRetryDelayMs, 200 * 2 ** Math.min(failures, 16));
        await sleep(100 + Math.random() * ceiling, undefined, { signal: stop.signal }).catch(() => undefined);
        continue;
      }
      const elapsed = performance.now() - startedAt;
      if (elapsed < minQueryIntervalMs) await sleep(minQueryIntervalMs - elapsed, undefined, { signal: stop.signal }).catch(() => undefined);
    }
  })();

  return {
    stalenessMs: () => performance.now() - state.lastAnswerAt,
    get lastError() {
      return state.lastError;
    },
    close() {
      if (stop.signal.aborted) return;
      stop.abort();
      cancel.emit("cancel");
    },
  };
}

/** The index for the next blocking query, by Consul's rules: backwards means reset (start at 0); never block on 0. */
export function nextIndex(previous: bigint, header: string | undefined): bigint {
  let next: bigint;
  try {
    next = BigInt(header ?? "0");
  } catch {
    return 0n;
  }
  if (next < previous) return 0n;
  return next > 0n ? next : 1n;
}
