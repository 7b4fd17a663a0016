import http2 from "node:http2";
import { promisify } from "node:util";
import zlib from "node:zlib";
import type { DescMessage, DescMethodUnary, MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError, type UnaryResponse } from "@connectrpc/connect";
import { Metadata, status as grpcStatus, type StatusObject } from "@grpc/grpc-js";
import type { ConnectionWaiter, Http2Connection } from "./http2-connection.js";
import { decodeGrpcMessage, http2HeadersToHeaders, requestHeaders, statusMetadataOf } from "./http2-headers.js";
import { httpStatusToGrpc, statusToConnectError, undecodableMessage } from "./status.js";
import { unaryAnswer } from "./unary-answer.js";

const {
  NGHTTP2_CANCEL,
  NGHTTP2_ENHANCE_YOUR_CALM,
  NGHTTP2_FLAG_END_STREAM,
  NGHTTP2_INADEQUATE_SECURITY,
  NGHTTP2_INTERNAL_ERROR,
  NGHTTP2_NO_ERROR,
  NGHTTP2_REFUSED_STREAM,
} = http2.constants;

const gunzip = promisify(zlib.gunzip);
const inflate = promisify(zlib.inflate);

/** What one unary call sends and how it reads the answer. */
export interface UnaryExchangeSpec<I extends DescMessage, O extends DescMessage> {
  method: DescMethodUnary<I, O>;
  path: string;
  deserialize: (bytes: Buffer) => MessageShape<O>;
  /** The request message, serialized. */
  request: Buffer;
  /** The caller's signal; undefined when nobody can cancel the call. */
  signal: AbortSignal | undefined;
  /** Caller headers sent as metadata; undefined for none. */
  headers: Headers | undefined;
  /** The call's timeout in ms (sent as grpc-timeout); undefined for none. */
  timeoutMs: number | undefined;
  readMaxBytes: number;
  writeMaxBytes: number;
  /** Longest wait for a connection before the call fails as never sent; undefined for none. */
  connectTimeoutMs: number | undefined;
}

/** The exchange an HTTP/2 stream belongs to: the stream's listeners below are shared, not made per call. */
const exchangeOf = Symbol("meshkit.unaryExchange");
type ExchangeStream = http2.ClientHttp2Stream & { [exchangeOf]: UnaryExchange<DescMessage, DescMessage> };

function onResponse(this: ExchangeStream, headers: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader, flags: number): void {
  this[exchangeOf].response(headers, flags);
}
function onData(this: ExchangeStream, chunk: Buffer): void {
  this[exchangeOf].data(chunk);
}
function onTrailers(this: ExchangeStream, trailers: http2.IncomingHttpHeaders): void {
  this[exchangeOf].trailers(trailers);
}
function onClose(this: ExchangeStream): void {
  this[exchangeOf].closed();
}
function onError(this: ExchangeStream, error: Error & { code?: string }): void {
  this[exchangeOf].streamError(error);
}

/**
 * sendUnaryOverHttp2 makes one unary gRPC call on `connection`'s HTTP/2 session, straight on
 * Node's HTTP/2 stream: the request headers and one length-prefixed message out, then the
 * response headers, the message and the trailers read back, with the answers a grpc-js channel
 * gives for everything else (its subchannel call's mapping of HTTP statuses, stream resets and
 * dropped connections to gRPC codes, its size limits, gzip and deflate responses), so
 * `statusToConnectError` turns a failure into the same ConnectError either way. A call that never
 * got a stream (no connection, a connect timeout) or that the server refused unprocessed
 * (REFUSED_STREAM) fails as never sent.
 */
export function sendUnaryOverHttp2<I extends DescMessage, O extends DescMessage>(connection: Http2Connection, spec: UnaryExchangeSpec<I, O>): Promise<UnaryResponse<I, O>> {
  if (spec.request.byteLength > spec.writeMaxBytes) {
    return Promise.reject(new ConnectError(`Sent message larger than max (${spec.request.byteLength} vs. ${spec.writeMaxBytes})`, Code.ResourceExhausted));
  }
  const exchange = new UnaryExchange(connection, spec);
  exchange.start();
  return exchange.result.promise;
}

/**
 * UnaryExchange is one unary call's state on its HTTP/2 stream. Its handlers are methods and the
 * stream's listeners are shared functions: nothing is allocated per call for them.
 */
class UnaryExchange<I extends DescMessage, O extends DescMessage> implements ConnectionWaiter {
  readonly result = Promise.withResolvers<UnaryResponse<I, O>>();
  #stream: http2.ClientHttp2Stream | undefined;
  /** The stream's session (a closed stream forgets it). */
  #session: http2.ClientHttp2Session | undefined;
  readonly #deadline: number;
  #timer: NodeJS.Timeout | undefined;
  #connectTimer: NodeJS.Timeout | undefined;
  #header: http2.IncomingHttpHeaders | undefined;
  #httpStatus: number | undefined;
  /** The headers that carried grpc-status: the trailers, or a trailers-only response's headers. */
  #trailer: http2.IncomingHttpHeaders | undefined;
  /** Response bytes not yet framed into a message, and how many. */
  #chunks: Buffer[] = [];
  #buffered = 0;
  /** The length of the message being received, once its prefix is in. */
  #frameLength: number | undefined;
  #message: Buffer | undefined;
  #compressed = false;
  /** A failure decided on this side (deadline, cancel, a broken response): it ends the call. */
  #failure: StatusObject | undefined;
  #neverSent = false;
  #streamError: (Error & { code?: string }) | undefined;
  #done = false;

  constructor(
    private readonly connection: Http2Connection,
    private readonly spec: UnaryExchangeSpec<I, O>,
  ) {
    this.#deadline = spec.timeoutMs === undefined ? Infinity : Date.now() + spec.timeoutMs;
  }

  start(): void {
    const { spec } = this;
    if (spec.signal?.aborted) return this.#finish();
    spec.signal?.addEventListener("abort", this, { once: true });
    if (spec.timeoutMs !== undefined) this.#timer = setTimeout(() => this.#end(grpcStatus.DEADLINE_EXCEEDED, "Deadline exceeded"), spec.timeoutMs);
    const session = this.connection.acquire(this);
    if (session !== undefined) this.connected(session);
    else if (!this.#done && spec.connectTimeoutMs !== undefined) {
      const ms = spec.connectTimeoutMs;
      this.#connectTimer = setTimeout(() => {
        this.#neverSent = true;
        this.#end(grpcStatus.UNAVAILABLE, `no connection within the ${ms} ms connect timeout`);
      }, ms);
    }
  }

  /** The caller's signal aborted. */
  handleEvent(): void {
    this.#end(grpcStatus.CANCELLED, "Cancelled on client");
  }

  connected(session: http2.ClientHttp2Session): void {
    if (this.#done) return;
    clearTimeout(this.#connectTimer);
    const { spec } = this;
    let stream: http2.ClientHttp2Stream;
    try {
      stream = session.request(requestHeaders(spec.path, spec.timeoutMs, spec.headers), { endStream: false });
    } catch (error) {
      // The session went away between the pick and the request (Node throws at once): no stream, nothing sent.
      this.#neverSent = true;
      return this.#end(grpcStatus.UNAVAILABLE, `could not open a stream: ${(error as Error).message}`);
    }
    this.#stream = stream;
    this.#session = session;
    (stream as ExchangeStream)[exchangeOf] = this as unknown as UnaryExchange<DescMessage, DescMessage>;
    stream.on("response", onResponse);
    stream.on("data", onData);
    stream.on("trailers", onTrailers);
    stream.on("close", onClose);
    stream.on("error", onError);
    // One write of prefix and message: a copy costs less than a second write, up to a point.
    const size = spec.request.byteLength;
    const prefix = Buffer.allocUnsafe(size <= 16_384 ? 5 + size : 5);
    prefix[0] = 0;
    prefix.writeUInt32BE(size, 1);
    if (size <= 16_384) {
      spec.request.copy(prefix, 5);
      stream.end(prefix);
    } else {
      stream.write(prefix);
      stream.end(spec.request);
    }
  }

  failed(error: Error): void {
    this.#neverSent = true;
    this.#end(grpcStatus.UNAVAILABLE, `No connection established. Last error: ${error.message}`);
  }

  response(headers: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader, flags: number): void {
    this.#httpStatus = headers[":status"];
    if (flags & NGHTTP2_FLAG_END_STREAM) this.#trailer = headers;
    else this.#header = headers;
  }

  data(chunk: Buffer): void {
    if (this.#failure !== undefined) return;
    this.#chunks.push(chunk);
    this.#buffered += chunk.byteLength;
    while (this.#buffered >= 5) {
      if (this.#frameLength === undefined) {
        const length = this.#joined().readUInt32BE(1);
        if (length > this.spec.readMaxBytes) {
          // A server answering with an HTTP error page: its status says more than the size does.
          if (this.#httpStatus !== undefined && this.#httpStatus !== 200) return this.#end(...httpStatusToGrpc(this.#httpStatus));
          return this.#end(grpcStatus.RESOURCE_EXHAUSTED, `Received message larger than max (${length} vs ${this.spec.readMaxBytes})`);
        }
        this.#frameLength = length;
      }
      const end = 5 + this.#frameLength;
      // A large message arrives in many chunks: they are joined once, when it is complete.
      if (this.#buffered < end) return;
      if (this.#message !== undefined) return this.#end(grpcStatus.UNIMPLEMENTED, "Too many responses received");
      const bytes = this.#joined();
      this.#compressed = (bytes[0]! & 1) === 1;
      this.#message = bytes.subarray(5, end);
      this.#chunks = end < bytes.byteLength ? [bytes.subarray(end)] : [];
      this.#buffered -= end;
      this.#frameLength = undefined;
    }
  }

  /** The buffered response bytes as one Buffer (joined in place). */
  #joined(): Buffer {
    const chunks = this.#chunks;
    if (chunks.length === 1) return chunks[0]!;
    const joined = Buffer.concat(chunks, this.#buffered);
    this.#chunks = [joined];
    return joined;
  }

  trailers(trailers: http2.IncomingHttpHeaders): void {
    this.#trailer = trailers;
  }

  streamError(error: Error & { code?: string }): void {
    this.#streamError = error;
  }

  /** The stream closed: every event of the answer has arrived. */
  closed(): void {
    try {
      if (this.#failure === undefined && this.#trailer === undefined) this.#failure = this.#statusWithout();
      this.#finish();
    } catch (error) {
      // Reading an answer must never throw out of a stream event (that would end the process):
      // whatever could not be read fails this call alone.
      this.#done = true;
      this.result.reject(new ConnectError(`could not read the answer: ${String(error)}`, Code.Internal));
    }
  }

  /** Ends the call on this side with `code`; the stream, if any, is reset and its close finishes the call. */
  #end(code: grpcStatus, details: string): void {
    if (this.#done || this.#failure !== undefined) return;
    this.#failure = { code, details, metadata: new Metadata() };
    const stream = this.#stream;
    if (stream === undefined) {
      // Still waiting for a connection: the request never left.
      this.#neverSent = true;
      this.connection.stopWaiting(this);
      return this.#finish();
    }
    if (!stream.closed) stream.close(NGHTTP2_CANCEL);
  }

  /** The status of a stream that ended with no grpc-status, as grpc-js's subchannel call reads it. */
  #statusWithout(): StatusObject {
    const stream = this.#stream!;
    const status = (code: grpcStatus, details: string): StatusObject => ({ code, details, metadata: new Metadata() });
    // The connection went (the peer's socket closed, a keepalive ping unanswered): Node resets
    // every stream on it, with CANCEL or INTERNAL_ERROR.
    if (this.#session!.destroyed && stream.rstCode !== NGHTTP2_NO_ERROR && stream.rstCode !== NGHTTP2_REFUSED_STREAM) {
      const error = this.#streamError;
      return status(grpcStatus.UNAVAILABLE, `Connection dropped${error ? `: ${error.message}` : ""}`);
    }
    switch (stream.rstCode) {
      case NGHTTP2_NO_ERROR:
        if (this.#httpStatus !== undefined && this.#httpStatus !== 200) return status(...httpStatusToGrpc(this.#httpStatus));
        return status(grpcStatus.INTERNAL, `Received RST_STREAM with code ${stream.rstCode} (Call ended without gRPC status)`);
      case NGHTTP2_REFUSED_STREAM:
        // The server did not process the stream (RFC 9113, 8.7): safe to send elsewhere.
        this.#neverSent = true;
        return status(grpcStatus.UNAVAILABLE, "Stream refused by server");
      case NGHTTP2_CANCEL:
        return status(grpcStatus.CANCELLED, "Call cancelled");
      case NGHTTP2_ENHANCE_YOUR_CALM:
        return status(grpcStatus.RESOURCE_EXHAUSTED, "Bandwidth exhausted or memory limit exceeded");
      case NGHTTP2_INADEQUATE_SECURITY:
        return status(grpcStatus.PERMISSION_DENIED, "Protocol not secure enough");
      case NGHTTP2_INTERNAL_ERROR: {
        const error = this.#streamError;
        if (error?.code === "ECONNRESET" || error?.code === "ETIMEDOUT") return status(grpcStatus.UNAVAILABLE, error.message);
        return status(grpcStatus.INTERNAL, `Received RST_STREAM with code ${stream.rstCode}${error ? ` triggered by internal client error: ${error.message}` : " (Internal server error)"}`);
      }
      default:
        return status(grpcStatus.INTERNAL, `Received RST_STREAM with code ${stream.rstCode}`);
    }
  }

  #finish(): void {
    if (this.#done) return;
    this.#done = true;
    const { spec, result } = this;
    clearTimeout(this.#timer);
    clearTimeout(this.#connectTimer);
    spec.signal?.removeEventListener("abort", this);
    this.connection.callEnded();
    if (spec.signal?.aborted) return result.reject(ConnectError.from(spec.signal.reason, Code.Canceled));
    const header = this.#header;
    if (this.#failure !== undefined) return result.reject(this.#error(this.#failure));
    const trailer = this.#trailer!;
    const code = trailer["grpc-status"];
    if (code === "0" && this.#buffered === 0 && this.#message !== undefined) {
      if (!this.#compressed) return this.#resolve(this.#message, header, trailer);
      void this.#decompress(this.#message, header, trailer);
      return;
    }
    result.reject(this.#error(this.#statusOf(trailer)));
  }

  /** The status in `trailer`, as grpc-js reads it (its metadata: the trailers but grpc-status and grpc-message). */
  #statusOf(trailer: http2.IncomingHttpHeaders): StatusObject {
    const code = trailer["grpc-status"];
    const metadata = statusMetadataOf(trailer);
    if (typeof code !== "string") {
      if (this.#httpStatus !== undefined && this.#httpStatus !== 200) {
        const [mapped, details] = httpStatusToGrpc(this.#httpStatus);
        return { code: mapped, details, metadata };
      }
      return { code: grpcStatus.UNKNOWN, details: "No status information received", metadata };
    }
    if (code === "0") {
      if (this.#buffered > 0) return { code: grpcStatus.INTERNAL, details: `the response ended inside a message (${this.#buffered} bytes of it received)`, metadata };
      return { code: grpcStatus.UNIMPLEMENTED, details: "no response message", metadata };
    }
    return { code: Number(code), details: decodeGrpcMessage(trailer["grpc-message"]), metadata };
  }

  #error(status: StatusObject): ConnectError {
    const header = this.#header === undefined ? undefined : http2HeadersToHeaders(this.#header, false);
    return statusToConnectError(status, header, this.#neverSent, this.#deadline);
  }

  #resolve(bytes: Buffer, header: http2.IncomingHttpHeaders | undefined, trailer: http2.IncomingHttpHeaders): void {
    let reply: MessageShape<O>;
    try {
      reply = this.spec.deserialize(bytes);
    } catch (error) {
      return this.result.reject(this.#error({ code: grpcStatus.INTERNAL, details: `Response message parsing error: ${String(error)}`, metadata: new Metadata() }));
    }
    this.result.resolve(unaryAnswer(this.spec.method, reply, header, trailer, http2HeadersToHeaders));
  }

  async #decompress(bytes: Buffer, header: http2.IncomingHttpHeaders | undefined, trailer: http2.IncomingHttpHeaders): Promise<void> {
    const encoding = header?.["grpc-encoding"];
    const decode = encoding === "gzip" ? gunzip : encoding === "deflate" ? inflate : undefined;
    if (decode === undefined) return this.result.reject(this.#error({ code: grpcStatus.INTERNAL, details: undecodableMessage, metadata: new Metadata() }));
    let plain: Buffer;
    try {
      plain = await decode(bytes, { maxOutputLength: this.spec.readMaxBytes + 1 });
    } catch (error) {
      const tooLarge = (error as { code?: string }).code === "ERR_BUFFER_TOO_LARGE";
      return this.result.reject(
        this.#error(
          tooLarge
            ? { code: grpcStatus.RESOURCE_EXHAUSTED, details: `Received message that decompresses to a size larger than ${this.spec.readMaxBytes}`, metadata: new Metadata() }
            : { code: grpcStatus.INTERNAL, details: `could not decompress a ${String(encoding)} response message: ${(error as Error).message}`, metadata: new Metadata() },
        ),
      );
    }
    if (plain.byteLength > this.spec.readMaxBytes) {
      return this.result.reject(this.#error({ code: grpcStatus.RESOURCE_EXHAUSTED, details: `Received message that decompresses to a size larger than ${this.spec.readMaxBytes}`, metadata: new Metadata() }));
    }
    this.#resolve(plain, header, trailer);
  }
}
