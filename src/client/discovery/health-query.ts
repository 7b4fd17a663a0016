import { Writable } from "node:stream";
import type { ConsulClient } from "../../platform/consul.js";

/** A health query's response headers and its body, unparsed: HealthAnswerParser parses only what changed. */
export type HealthQuery = (options: Record<string, unknown>) => Promise<[{ headers: Record<string, string | undefined> }, Buffer]>;

/**
 * AnswerBuffers receives a watch's answers into two buffers it reuses, taking turns: the body of
 * the last answer, which the parser keeps to compare the next one with, stays untouched while the
 * next answer is written into the other. A thousand instances answer 565 KB at every change;
 * collected in fresh buffers (chunks, then one concatenation), every answer was a megabyte of new
 * memory outside V8's heap, which V8 counts towards its next full collection.
 */
export class AnswerBuffers {
  /** The buffer the next answer is written into, and the one the reader holds. */
  #receiving = Buffer.allocUnsafeSlow(64 * 1024);
  #held = Buffer.allocUnsafeSlow(64 * 1024);
  #length = 0;

  /** A sink for the next answer's body. */
  sink(): Writable {
    this.#length = 0;
    return new Writable({
      write: (chunk: Buffer, _encoding, done) => {
        this.#append(chunk);
        done();
      },
    });
  }

  /** The answer received, as a view of its buffer: valid until the next answer, unless handed over. */
  body(): Buffer {
    return this.#receiving.subarray(0, this.#length);
  }

  /** Hands the answer's buffer to the reader, who keeps it until the next hand-over: the next answer goes to the other one. */
  handOver(): void {
    [this.#receiving, this.#held] = [this.#held, this.#receiving];
  }

  #append(chunk: Buffer): void {
    if (this.#length + chunk.length > this.#receiving.length) {
      const grown = Buffer.allocUnsafeSlow(Math.max(this.#receiving.length * 2, this.#length + chunk.length));
      this.#receiving.copy(grown, 0, 0, this.#length);
      this.#receiving = grown;
    }
    chunk.copy(this.#receiving, this.#length);
    this.#length += chunk.length;
  }
}

/**
 * `/v1/health/service/<service>` or `/v1/health/connect/<service>` with the query options of the
 * package's `health.service` (which has neither `cached` nor a connect method, and always parses
 * the whole answer): built on the package's request path (`_get`, its options helper), so
 * address, TLS and token apply alike. The body is piped into `buffers` (papi's `pipe` option),
 * and comes back as a view of them.
 */
export function healthQuery(consul: ConsulClient, view: "service" | "connect", buffers: AnswerBuffers): HealthQuery {
  const client = consul as unknown as { _get: (req: unknown, middleware: unknown) => Promise<unknown>; _defaults?: Record<string, unknown> };
  return (options) => {
    const { service, passing, tag, ...rest } = { ...client._defaults, ...options } as { service: string; passing?: boolean; tag?: string[] } & Record<string, unknown>;
    const query: Record<string, unknown> = { ...(passing ? { passing: "true" } : {}), ...(tag ? { tag } : {}), ...(rest.cached ? { cached: "" } : {}) };
    for (const name of ["dc", "near", "filter", "index", "wait"]) if (rest[name] !== undefined) query[name] = rest[name];
    return client._get(
      {
        name: `health.${view}`,
        path: `/health/${view}/${encodeURIComponent(service)}`,
        query,
        headers: typeof rest.token === "string" ? { "x-consul-token": rest.token } : {},
        ctx: rest.ctx,
        timeout: rest.timeout,
        pipe: buffers.sink(),
      },
      (call: { err?: Error & { response?: unknown }; res?: { body: unknown } }, next: (stop: false, error?: Error, value?: unknown) => void) => {
        if (call.err) {
          // Consul's reason is the error answer's text (a refused filter: "Failed to create
          // boolean expression evaluator: ..."), which callers read from the response's body.
          // (No response at all when the query was cancelled.)
          if (call.res) call.res.body = buffers.body().toString("utf8");
          call.err.response = call.res; // as the package does with includeResponse: the status reaches the caller
          return next(false, call.err);
        }
        next(false, undefined, [call.res, buffers.body()]);
      },
    ) as ReturnType<HealthQuery>;
  };
}
