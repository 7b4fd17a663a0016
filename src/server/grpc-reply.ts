import http2 from "node:http2";
import { promisify } from "node:util";
import zlib from "node:zlib";
import { Code, ConnectError } from "@connectrpc/connect";
import { setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { encodeGrpcMessage } from "./grpc-message.js";
import { addHeaders, frame, prefix } from "./grpc-wire.js";
import { closeEarly } from "./close-early.js";

/** From this size on, a message is written after its prefix as it is, rather than copied behind it. */
const copyLimitBytes = 1024;

const contentTypeProto = "application/grpc+proto";

const gzip = promisify(zlib.gzip);

/**
 * GrpcReply writes one gRPC response on an HTTP/2 stream: headers before the first message (so
 * a handler may still set them until then), messages, then trailers carrying the status. Like
 * connect-node, it sends headers and trailers also when there is no message (no trailers-only
 * response), so that a caller cannot tell which path served it. It is the one place that knows
 * whether the call is over, so a deadline, a cancellation and the handler's own end cannot
 * answer twice.
 */
export class GrpcReply {
  private headersSent = false;
  private trailers: http2.OutgoingHttpHeaders = { "grpc-status": "0" };
  /** True once the status is decided (sent or queued) or the stream is gone. */
  finished = false;

  constructor(
    private readonly stream: http2.ServerHttp2Stream,
    private readonly responseHeader: Headers,
    private readonly responseTrailer: Headers,
    private readonly writeMaxBytes: number,
    /** Messages of at least this many bytes go out gzipped; undefined: none (the caller does not accept gzip, or compression is off). */
    private readonly compressMinBytes: number | undefined,
  ) {
    // Trailers are sent when the last DATA frame is out, which is only known asynchronously.
    stream.on("wantTrailers", () => {
      try {
        stream.sendTrailers(this.trailers);
      } catch {
        return stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR); // a trailer HTTP/2 forbids, set by a handler
      }
      // A request still sending (an oversized or extra message was refused, a bad header
      // answered before the body was read, the deadline passed): the stream is closed after the
      // trailers (RST_STREAM NO_ERROR), as connect-node does, rather than its rest read. (A call
      // that read its whole request, every ordinary one, schedules nothing.)
      if (!stream.readableEnded) closeEarly(stream);
    });
  }

  /** compresses: whether `message` is to go out gzipped, with `sendCompressed` rather than `send`. */
  compresses(message: Uint8Array): boolean {
    return this.compressMinBytes !== undefined && message.byteLength >= this.compressMinBytes;
  }

  /** send writes one serialized message, uncompressed; false when the peer is slow and `drained()` should be awaited. */
  send(message: Uint8Array): boolean {
    this.checkSize(message);
    if (this.finished || this.stream.destroyed || this.stream.closed) return true;
    this.sendHeaders();
    if (message.byteLength < copyLimitBytes) return this.stream.write(frame(message));
    this.stream.write(prefix(message.byteLength));
    return this.stream.write(message);
  }

  /**
   * sendCompressed writes one serialized message gzipped (compressed on libuv's thread pool, as
   * connect-node does); resolves false when the peer is slow and `drained()` should be awaited.
   */
  async sendCompressed(message: Uint8Array): Promise<boolean> {
    this.checkSize(message);
    const compressed = await gzip(message);
    if (this.finished || this.stream.destroyed || this.stream.closed) return true;
    this.sendHeaders();
    this.stream.write(prefix(compressed.byteLength, true));
    return this.stream.write(compressed);
  }

  /** The limit applies to the serialized message, before any compression, as in connect-node. */
  private checkSize(message: Uint8Array): void {
    if (message.byteLength > this.writeMaxBytes) {
      throw new ConnectError(`message size ${message.byteLength} is larger than configured writeMaxBytes ${this.writeMaxBytes}`, Code.ResourceExhausted);
    }
  }

  /** Resolves when the stream can take more, or is gone. */
  drained(): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        this.stream.off("drain", done);
        this.stream.off("close", done);
        resolve();
      };
      this.stream.on("drain", done);
      this.stream.on("close", done);
    });
  }

  /**
   * expire ends the call at its deadline with `error`'s trailers, when they can go out now. When
   * messages are still waiting for the peer's flow-control window (a client that stopped
   * reading), the trailers would wait behind them for as long as the client does not read: the
   * stream is reset with CANCEL instead, as grpc-java's and grpc-go's servers cancel an expired
   * call's stream, so that the call ends at its deadline in every case.
   */
  expire(error: ConnectError): void {
    if (!this.finished && this.stream.writableLength > 0) {
      this.finished = true;
      this.stream.close(http2.constants.NGHTTP2_CANCEL);
      return;
    }
    this.end(error);
  }

  /** end finishes the call with OK, or with `error` (a non-ConnectError becomes INTERNAL, as in connect-node). */
  end(error?: unknown): void {
    if (this.finished) return;
    this.finished = true;
    if (this.stream.destroyed || this.stream.closed) return;
    const connectError = error === undefined ? undefined : error instanceof ConnectError ? error : new ConnectError("internal error", Code.Internal, undefined, undefined, error);
    const trailers = connectError || !isEmpty(this.responseTrailer) ? this.statusTrailers(connectError) : this.trailers;
    try {
      this.sendHeaders();
      this.trailers = trailers;
      this.stream.end();
    } catch {
      // A header HTTP/2 forbids (set by a handler), or the stream closed meanwhile.
      this.stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
    }
  }

  private sendHeaders(): void {
    if (this.headersSent) return;
    this.stream.respond(this.headers(), { waitForTrailers: true });
    this.headersSent = true;
  }

  private headers(): http2.OutgoingHttpHeaders {
    // As connect-node, the encoding is named once the caller accepts gzip, whether or not a
    // message turns out large enough. (Two literals: no property added to the object per call.)
    const headers: http2.OutgoingHttpHeaders =
      this.compressMinBytes === undefined ? { ":status": 200, "content-type": contentTypeProto } : { ":status": 200, "content-type": contentTypeProto, "grpc-encoding": "gzip" };
    return addHeaders(headers, this.responseHeader);
  }

  private statusTrailers(error: ConnectError | undefined): http2.OutgoingHttpHeaders {
    const trailers = new Headers(this.responseTrailer);
    setTrailerStatus(trailers, error);
    // As grpc-go encodes it, not as connect-es does (grpc-message.ts).
    if (error) trailers.set("grpc-message", encodeGrpcMessage(error.rawMessage));
    return addHeaders({}, trailers);
  }
}

function isEmpty(headers: Headers): boolean {
  for (const _ of headers.keys()) return false;
  return true;
}
