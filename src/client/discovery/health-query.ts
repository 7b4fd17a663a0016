import { EventEmitter } from "node:events";
import { STATUS_CODES } from "node:http";
import { Writable } from "node:stream";
import { AnswerConnection, type BodySink } from "../../platform/answer-connection.js";
import type { ConsulClient } from "../../platform/consul.js";

/**
 * AnswerBuffers receives a watch's answers into two buffers it reuses, taking turns: the body of
 * the last answer, which the parser keeps to compare the next one with, stays untouched while the
 * next answer is written into the other. A thousand instances answer 565 KB at every change;
 * collected in fresh buffers (chunks, then one concatenation), every answer was a megabyte of new
 * memory outside V8's heap, which V8 counts towards its next full collection.
 */
export class AnswerBuffers implements BodySink {
  /** The buffer the next answer is written into, and the one the reader holds. */
  #receiving = Buffer.allocUnsafeSlow(64 * 1024);
  #held = Buffer.allocUnsafeSlow(64 * 1024);
  #length = 0;

  /** A new answer starts. */
  reset(): void {
    this.#length = 0;
  }

  /** A stream sink for the next answer's body (for the `consul` package's `pipe`). */
  sink(): Writable {
    this.reset();
    return new Writable({
      write: (chunk: Buffer, _encoding, done) => {
        this.append(chunk, 0, chunk.length);
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

  /** Adds `bytes[from, to)` to the answer being received. */
  append(bytes: Buffer, from: number, to: number): void {
    const size = to - from;
    if (this.#length + size > this.#receiving.length) {
      const grown = Buffer.allocUnsafeSlow(Math.max(this.#receiving.length * 2, this.#length + size));
      this.#receiving.copy(grown, 0, 0, this.#length);
      this.#receiving = grown;
    }
    bytes.copy(this.#receiving, this.#length, from, to);
    this.#length += size;
  }
}

/** The options of one health query, as the package's `health.service` takes them. */
export interface HealthQueryOptions {
  service: string;
  passing?: boolean;
  tag?: string[];
  filter?: string;
  dc?: string;
  near?: string;
  cached?: boolean;
  index: string;
  wait: string;
  /** Longest the exchange may take, in ms. */
  timeout: number;
  /** Ends a query in flight (the watch stopped). */
  signal: AbortSignal;
}

/**
 * HealthQuery asks `/v1/health/service/<service>` (or `/v1/health/connect/<service>`) and hands
 * back the response's headers and its body unparsed (HealthAnswerParser parses only what
 * changed), as a view of the AnswerBuffers it was given.
 */
export interface HealthQuery {
  ask(options: HealthQueryOptions): Promise<[{ headers: Record<string, string | undefined> }, Buffer]>;
  close(): void;
}

/**
 * healthQuery picks how to ask: over a kept-alive AnswerConnection of its own when the Consul
 * client speaks plain HTTP over TCP (the common case, a local agent), else through the
 * package's request path with the body piped into the buffers (HTTPS, a Unix socket). Both send
 * the same query, the client's default token and its extra headers.
 */
export function healthQuery(consul: ConsulClient, view: "service" | "connect", buffers: AnswerBuffers): HealthQuery {
  const client = consul as unknown as PackageClient;
  const base = client._opts?.baseUrl;
  // The package gives every client a keep-alive http.Agent: an agent for a Unix socket is not
  // that plain TCP connection, and takes the package's path.
  const agentPath = (client._opts?.agent as { options?: { path?: string | null } } | undefined)?.options?.path;
  if (base?.protocol === "http:" && !agentPath && base.hostname && base.port) {
    const host = base.hostname.replace(/^\[(.*)\]$/, "$1"); // an IPv6 address comes bracketed, as in a URL
    return connectionQuery(client, view, buffers, host, Number(base.port), base.path ?? "/v1");
  }
  return packageQuery(client, view, buffers);
}

/** What the `consul` package (on papi) keeps that a query needs. */
interface PackageClient {
  _get: (req: unknown, middleware: unknown) => Promise<unknown>;
  _defaults?: { token?: string } & Record<string, unknown>;
  _opts?: { baseUrl?: { protocol?: string; hostname?: string; port?: string; path?: string }; agent?: unknown; headers?: Record<string, string> };
}

/** The query string parameters, as the package's `health.service` sends them. */
function queryOf(options: HealthQueryOptions): Record<string, string | string[]> {
  const query: Record<string, string | string[]> = {};
  if (options.passing) query.passing = "true";
  if (options.tag?.length) query.tag = options.tag;
  if (options.cached) query.cached = "";
  for (const name of ["dc", "near", "filter", "index", "wait"] as const) if (options[name] !== undefined) query[name] = options[name];
  return query;
}

function connectionQuery(client: PackageClient, view: "service" | "connect", buffers: AnswerBuffers, host: string, port: number, basePath: string): HealthQuery {
  const connection = new AnswerConnection(host, port);
  const token = client._defaults?.token;
  const headers = { ...client._opts?.headers, ...(typeof token === "string" ? { "X-Consul-Token": token } : {}) };
  return {
    async ask(options) {
      const query = new URLSearchParams();
      for (const [name, value] of Object.entries(queryOf(options))) for (const one of [value].flat()) query.append(name, one);
      const path = `${basePath}/health/${view}/${encodeURIComponent(options.service)}?${query.toString()}`;
      const answer = await connection.get(path, buffers, { headers, timeoutMs: options.timeout, signal: options.signal });
      if (Math.floor(answer.statusCode / 100) !== 2) {
        // As the package reports it: the status's name as the message, the response with the
        // status and Consul's reason (its body's text: a refused filter says why) on the error.
        const error = new Error(STATUS_CODES[answer.statusCode]?.toLowerCase() ?? `request failed: ${answer.statusCode}`);
        throw Object.assign(error, { response: { statusCode: answer.statusCode, headers: answer.headers, body: buffers.body().toString("utf8") } });
      }
      return [{ headers: answer.headers }, buffers.body()];
    },
    close: () => connection.close(),
  };
}

/**
 * The query through the package's request path (`_get`, its options helper), so address, TLS,
 * agent and token apply as for every other call; the body is piped into the buffers (papi's
 * `pipe` option). (The package's `health.service` has neither `cached` nor a connect method, and
 * parses the whole answer.)
 */
function packageQuery(client: PackageClient, view: "service" | "connect", buffers: AnswerBuffers): HealthQuery {
  return {
    ask(options) {
      const ctx = Object.assign(new EventEmitter(), { includeResponse: true });
      const onAbort = () => ctx.emit("cancel");
      options.signal.addEventListener("abort", onAbort, { once: true });
      const token = client._defaults?.token;
      return (
        client._get(
          {
            name: `health.${view}`,
            path: `/health/${view}/${encodeURIComponent(options.service)}`,
            query: queryOf(options),
            headers: typeof token === "string" ? { "x-consul-token": token } : {},
            ctx,
            timeout: options.timeout,
            pipe: buffers.sink(),
          },
          (call: { err?: Error & { response?: unknown }; res?: { body: unknown } }, next: (stop: false, error?: Error, value?: unknown) => void) => {
            if (call.err) {
              // Consul's reason is the error answer's text (a refused filter: "Failed to create
              // boolean expression evaluator: ..."), which callers read from the response's
              // body. (No response at all when the query was cancelled.)
              if (call.res) call.res.body = buffers.body().toString("utf8");
              call.err.response = call.res; // as the package does with includeResponse: the status reaches the caller
              return next(false, call.err);
            }
            next(false, undefined, [call.res, buffers.body()]);
          },
        ) as ReturnType<HealthQuery["ask"]>
      ).finally(() => options.signal.removeEventListener("abort", onAbort));
    },
    // The package's agent keeps the connection; a query in flight ends with its signal.
    close: () => undefined,
  };
}
