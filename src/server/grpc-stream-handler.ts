import type http2 from "node:http2";
import { create, fromBinary, toBinary, type DescMessage } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createContextKey,
  createContextValues,
  type HandlerContext,
  type Interceptor,
  type MethodImplSpec,
  type StreamRequest,
  type StreamResponse,
  type UnaryRequest,
  type UnaryResponse,
} from "@connectrpc/connect";
import { createAsyncIterable } from "@connectrpc/connect/protocol";
import { parseTimeout } from "@connectrpc/connect/protocol-grpc";
import { GrpcReply } from "./grpc-reply.js";
import { readSingleMessage, requestHeaders } from "./grpc-wire.js";
import { streamContextOf } from "./stream-context.js";
import { callConnectionKey } from "./call-connection.js";
import { recordCallDeadline } from "./call-deadline.js";

/** GrpcStreamHandlerOptions configure `createGrpcStreamHandler`. */
export interface GrpcStreamHandlerOptions {
  /** Implementations by request path ("/package.Service/Method"), see route-recorder.ts. */
  methods: ReadonlyMap<string, MethodImplSpec>;
  /**
   * The host's Connect interceptors, outermost first: the very ones connect-node runs, with
   * `recordStreamContext`'s innermost one (a streamed response is written in its context).
   */
  interceptors?: readonly Interceptor[];
  /** Largest request message, in bytes. */
  readMaxBytes: number;
  /** Largest response message, in bytes. */
  writeMaxBytes: number;
  /**
   * Response messages of at least this many bytes are gzipped for a caller that accepts gzip
   * (`grpc-accept-encoding`); undefined: no response is compressed.
   */
  compressMinBytes?: number;
}

/**
 * A GrpcStreamHandler serves a gRPC call from a raw HTTP/2 stream, or declines it (returns
 * false) so that connect-node serves it instead.
 */
export type GrpcStreamHandler = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => boolean;

type AnyFn = (request: UnaryRequest | StreamRequest) => Promise<UnaryResponse | StreamResponse>;

/** The call's HandlerContext travels to the innermost function in the request's context values. */
const handlerContextKey = createContextKey<HandlerContext | undefined>(undefined, { description: "meshkit lean gRPC call" });

/** Why a handler's signal is aborted once its call is over, as connect-node does (one shared reason: no allocation per call). */
const callEnded = new ConnectError("the call has ended", Code.Canceled);

/** setTimeout's largest delay (2^31-1 ms, about 24.8 days); a longer deadline needs no timer. */
const maxTimerMs = 2 ** 31 - 1;

/**
 * createGrpcStreamHandler is the host's lean gRPC path: the common calls (unary and server
 * streaming, protobuf, uncompressed requests, over HTTP/2) served straight from Node's core
 * HTTP/2 stream API instead of through connect-node's per-protocol pipeline of web streams and
 * async iterables, which costs six to seven times grpc-js's CPU per call (docs/benchmarks.md).
 *
 * Semantics are connect-node's: the same implementations (route-recorder.ts), the same Connect
 * interceptor chain with UnaryRequest/StreamRequest objects (so tracing, metrics, validation,
 * deadline, auth and error mapping are one implementation for every protocol), the same error
 * texts and codes, headers before the first message, trailers with the status, responses
 * gzipped from the same size on. One deliberate difference: when the caller's deadline passes,
 * the call is answered DEADLINE_EXCEEDED at once (as grpc-js and grpc-go do; connect-node waits
 * for the handler). Everything else (gRPC-Web, Connect, JSON, compressed requests, callers that
 * prefer brotli, client and bidi streams, unknown paths) is declined and goes to connect-node on
 * the same connection.
 */
export function createGrpcStreamHandler(options: GrpcStreamHandlerOptions): GrpcStreamHandler {
  const interceptors = [...(options.interceptors ?? [])];
  const methods = new Map([...options.methods].filter(([, spec]) => spec.kind === "unary" || spec.kind === "server_streaming").map(([path, spec]) => [path, prepare(spec, interceptors)]));
  const { readMaxBytes, writeMaxBytes } = options;

  return (stream, headers) => {
    const method = methods.get(headers[":path"] ?? "");
    if (!method || headers[":method"] !== "POST" || !isGrpcProto(headers["content-type"])) return false;
    const encoding = headers["grpc-encoding"];
    if (encoding !== undefined && encoding !== "identity") return false;
    let compressMinBytes: number | undefined;
    const accepted = headers["grpc-accept-encoding"];
    if (options.compressMinBytes !== undefined && typeof accepted === "string") {
      const chosen = responseEncoding(accepted);
      if (chosen === "br") return false; // connect-node's brotli answers it
      if (chosen === "gzip") compressMinBytes = options.compressMinBytes;
    }
    serve(stream, headers, method, readMaxBytes, writeMaxBytes, compressMinBytes);
    return true;
  };
}

type ResponseEncoding = "gzip" | "br" | "identity";

/** The answers of `responseEncoding` by `grpc-accept-encoding` value: callers send the same few. */
const encodings = new Map<string, ResponseEncoding>();

/**
 * The compression connect-node answers a caller with, by its `grpc-accept-encoding`
 * (compressionNegotiate over the host's gzip and brotli): the first of them the caller names.
 */
function responseEncoding(accepted: string): ResponseEncoding {
  const known = encodings.get(accepted);
  if (known) return known;
  let chosen: ResponseEncoding = "identity";
  for (const name of accepted.split(",")) {
    const trimmed = name.trim();
    if (trimmed === "gzip" || trimmed === "br") {
      chosen = trimmed;
      break;
    }
  }
  if (encodings.size < 64) encodings.set(accepted, chosen);
  return chosen;
}

interface PreparedMethod {
  spec: MethodImplSpec;
  /** The interceptor chain, built once per method rather than per call. */
  chain: AnyFn;
  output: DescMessage;
}

function prepare(spec: MethodImplSpec, interceptors: Interceptor[]): PreparedMethod {
  const output = spec.method.output;
  // The innermost function, as connect's invokeUnaryImplementation: the implementation gets a
  // context carrying what interceptors may have replaced (headers, signal, values).
  const invoke: AnyFn = async (request) => {
    const call = request.contextValues.get(handlerContextKey)!;
    const context: HandlerContext = { ...call, service: request.service, requestHeader: request.header, signal: request.signal, values: request.contextValues };
    const common = { service: request.service, header: call.responseHeader, trailer: call.responseTrailer };
    if (spec.kind === "unary") {
      const message = create(output, await spec.impl((request as UnaryRequest).message, context));
      return { ...common, stream: false, method: spec.method, message } as UnaryResponse;
    }
    if (spec.kind !== "server_streaming") throw new ConnectError(`${spec.kind} is not served on this path`, Code.Internal);
    const input = await single((request as StreamRequest).message);
    return { ...common, stream: true, method: spec.method, message: normalized(output, spec.impl(input, context)) } as StreamResponse;
  };
  // connect's applyInterceptors: the first interceptor is the outermost.
  const chain = interceptors.reduceRight<AnyFn>((next, interceptor) => interceptor(next), invoke);
  return { spec, chain, output };
}

function serve(
  stream: http2.ServerHttp2Stream,
  headers: http2.IncomingHttpHeaders,
  prepared: PreparedMethod,
  readMaxBytes: number,
  writeMaxBytes: number,
  compressMinBytes: number | undefined,
): void {
  const { spec, chain, output } = prepared;
  const method = spec.method;
  const controller = new AbortController();
  const requestHeader = requestHeaders(headers);
  const responseHeader = new Headers();
  const responseTrailer = new Headers();
  const values = createContextValues();
  const timeout = parseTimeout(typeof headers["grpc-timeout"] === "string" ? headers["grpc-timeout"] : null, Number.MAX_SAFE_INTEGER);
  const deadline = timeout.timeoutMs === undefined ? undefined : performance.now() + timeout.timeoutMs;
  const url = `${headers[":scheme"] ?? "http"}://${headers[":authority"] ?? "localhost"}${headers[":path"]}`;
  const context: HandlerContext = {
    method,
    service: method.parent,
    signal: controller.signal,
    timeoutMs: () => (deadline === undefined ? undefined : deadline - performance.now()),
    requestMethod: "POST",
    requestHeader,
    responseHeader,
    responseTrailer,
    protocolName: "grpc",
    values,
    url,
  };
  values.set(handlerContextKey, context);
  values.set(callConnectionKey, stream.session);
  recordCallDeadline(values, deadline);
  const reply = new GrpcReply(stream, responseHeader, responseTrailer, writeMaxBytes, compressMinBytes);
  let timer: NodeJS.Timeout | undefined;
  const finish = (error?: unknown) => {
    if (timer) clearTimeout(timer);
    reply.end(error);
    if (!controller.signal.aborted) controller.abort(error ?? callEnded);
  };

  stream.on("error", () => undefined); // a reset by the peer: 'close' below ends the call
  stream.once("close", () => {
    if (!reply.finished) finish(new ConnectError("the client cancelled the call", Code.Canceled));
  });
  if (timeout.error) return finish(timeout.error);
  if (timeout.timeoutMs !== undefined && timeout.timeoutMs <= maxTimerMs) {
    timer = setTimeout(() => {
      const expired = new ConnectError("the operation timed out", Code.DeadlineExceeded);
      reply.expire(expired);
      finish(expired);
    }, timeout.timeoutMs);
  }

  const kind = spec.kind === "unary" ? "unary" : "server-streaming";
  readSingleMessage(stream, readMaxBytes, kind)
    .then(async (bytes) => {
      // Answered already (the deadline passed while the body was arriving): the handler never starts.
      if (reply.finished) return;
      let message;
      try {
        message = fromBinary(method.input, bytes);
      } catch (error) {
        throw new ConnectError(`parse binary: ${error instanceof Error ? error.message : String(error)}`, Code.Internal);
      }
      const common = { service: method.parent, requestMethod: "POST", url, signal: controller.signal, header: requestHeader, contextValues: values };
      if (spec.kind === "unary") {
        const response = await chain({ ...common, stream: false, method, message } as UnaryRequest);
        copyHeaders(response.header, responseHeader);
        copyHeaders(response.trailer, responseTrailer);
        const bytes = toBinary(output, response.message as UnaryResponse["message"]);
        if (reply.compresses(bytes)) await reply.sendCompressed(bytes);
        else reply.send(bytes);
        return;
      }
      const response = await chain({ ...common, stream: true, method, message: createAsyncIterable([message]) } as StreamRequest);
      copyHeaders(response.header, responseHeader);
      const messages = response.message as AsyncIterable<UnaryResponse["message"]>;
      // The handler's body and the interceptors' stream wrappers run on our next() calls: in the
      // context the interceptors set up (stream-context.ts), entered once, kept by every await.
      const inContext = streamContextOf(values);
      await (inContext ? inContext(() => writeAll(messages, output, reply)) : writeAll(messages, output, reply));
      copyHeaders(response.trailer, responseTrailer);
    })
    .then(
      () => finish(),
      (error: unknown) => finish(error),
    );
}

/** Writes each message of a server stream, waiting for the peer when the stream's buffer is full. */
async function writeAll(messages: AsyncIterable<UnaryResponse["message"]>, output: DescMessage, reply: GrpcReply): Promise<void> {
  const iterator = messages[Symbol.asyncIterator]();
  try {
    while (!reply.finished) {
      const next = await iterator.next();
      if (next.done || reply.finished) break;
      const bytes = toBinary(output, next.value);
      if (!(reply.compresses(bytes) ? await reply.sendCompressed(bytes) : reply.send(bytes))) await reply.drained();
    }
  } finally {
    // The caller went away, or the deadline passed: let the handler's generator clean up.
    if (reply.finished) void iterator.return?.().catch(() => undefined);
  }
}

function isGrpcProto(contentType: string | undefined): boolean {
  return contentType === "application/grpc" || contentType === "application/grpc+proto";
}

/** connect's copyHeaders: an interceptor may have answered with Headers of its own. */
function copyHeaders(from: Headers, to: Headers): void {
  if (from === to) return;
  for (const key of [...to.keys()]) to.delete(key);
  from.forEach((value, key) => to.set(key, value));
}

async function single<T>(messages: AsyncIterable<T>): Promise<T> {
  const iterator = messages[Symbol.asyncIterator]();
  const first = await iterator.next();
  if (first.done) throw new ConnectError("protocol error: missing input message for server-streaming method", Code.Unimplemented);
  return first.value;
}

/** The handler yields message initializers; interceptors and the writer see full messages. */
function normalized<T extends DescMessage>(desc: T, messages: AsyncIterable<Parameters<typeof create<T>>[1]>): AsyncIterable<ReturnType<typeof create<T>>> {
  return {
    [Symbol.asyncIterator]() {
      const iterator = messages[Symbol.asyncIterator]();
      const map = (result: IteratorResult<Parameters<typeof create<T>>[1]>) => (result.done ? result : { done: false as const, value: create(desc, result.value) });
      return {
        next: () => iterator.next().then(map),
        return: (value?: unknown) => (iterator.return ? iterator.return(value).then(map) : Promise.resolve({ done: true as const, value: undefined })),
        throw: (error?: unknown) => (iterator.throw ? iterator.throw(error).then(map) : Promise.reject(error)),
      } as AsyncIterator<ReturnType<typeof create<T>>>;
    },
  };
}
