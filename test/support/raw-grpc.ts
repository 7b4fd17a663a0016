import http2 from "node:http2";

/** What came back from a raw call: HTTP status, gRPC status (headers or trailers) and message. */
export interface RawAnswer {
  httpStatus: number;
  grpcStatus: number | undefined;
  grpcMessage: string;
}

/** A gRPC length-prefixed message frame (flag 0, big-endian length, payload). */
export function grpcFrame(payload: Uint8Array, declaredLength = payload.length): Buffer {
  const frame = Buffer.alloc(5 + payload.length);
  frame.writeUInt8(0, 0);
  frame.writeUInt32BE(declaredLength, 1);
  Buffer.from(payload).copy(frame, 5);
  return frame;
}

/**
 * rawCall sends `body` as one HTTP/2 request to `path` with the given content type, below any
 * client library, so that a test can send what no well-behaved client would.
 */
export async function rawCall(port: number, path: string, body: Buffer, contentType = "application/grpc"): Promise<RawAnswer> {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  session.on("error", () => undefined);
  try {
    return await rawRequest(session, path, body, contentType);
  } finally {
    session.close();
  }
}

/** rawRequest makes one request on `session` and reads its answer (cancelled after 10 s). */
export function rawRequest(session: http2.ClientHttp2Session, path: string, body: Buffer, contentType = "application/grpc"): Promise<RawAnswer> {
  return new Promise<RawAnswer>((resolve, reject) => {
    const request = session.request({ ":method": "POST", ":path": path, "content-type": contentType, te: "trailers" });
    const answer: RawAnswer = { httpStatus: 0, grpcStatus: undefined, grpcMessage: "" };
    const read = (headers: http2.IncomingHttpHeaders) => {
      if (headers["grpc-status"] !== undefined) answer.grpcStatus = Number(headers["grpc-status"]);
      if (headers["grpc-message"] !== undefined) answer.grpcMessage = decodeURIComponent(String(headers["grpc-message"]));
    };
    request.on("response", (headers) => {
      answer.httpStatus = Number(headers[":status"]);
      read(headers);
    });
    request.on("trailers", read);
    request.on("data", () => undefined);
    request.on("end", () => resolve(answer));
    request.on("error", reject);
    request.setTimeout(10_000, () => request.close(http2.constants.NGHTTP2_CANCEL));
    request.end(body);
  });
}

/** Everything one raw HTTP/2 exchange showed, frame by frame (see `rawExchange`). */
export interface RawExchange {
  /** The response's first header block, as Node merged it, and as sent (name, value, name, ...). */
  headers: http2.IncomingHttpHeaders;
  rawHeaders: string[];
  /** True when the first header block ended the stream (END_STREAM): a trailers-only response. */
  headersEndStream: boolean;
  /** The trailers, when a second header block came (none in a trailers-only response). */
  trailers: http2.IncomingHttpHeaders | undefined;
  rawTrailers: string[];
  /** The response body, in one buffer. */
  body: Buffer;
  /** The RST_STREAM code the stream closed with (0 when it closed without one, or with NO_ERROR). */
  rstCode: number;
  /** True when the stream closed; false when `waitMs` ran out first (then the client cancelled it). */
  closed: boolean;
  /** Milliseconds from the request to the stream's close (or to `waitMs`). */
  elapsedMs: number;
}

export interface RawExchangeOptions {
  /** Request headers beyond :method, :path, content-type and te. */
  headers?: http2.OutgoingHttpHeaders;
  /** Written before anything else; the request is ended after it unless `keepOpen`. */
  body?: Buffer;
  /** Leave the request open after `body`: a client still sending. */
  keepOpen?: boolean;
  /** Stop reading the response (flow control then holds the server back). */
  pause?: boolean;
  /** The client's SETTINGS (e.g. a tiny initialWindowSize). */
  settings?: http2.Settings;
  /** Gives up (and cancels the stream) after this many milliseconds. Default 5000. */
  waitMs?: number;
  /** Called with the request once it is open, to write more, reset it, ... */
  during?: (request: http2.ClientHttp2Stream) => void;
}

/**
 * rawExchange sends one gRPC request over its own HTTP/2 connection and reports the answer
 * frame by frame, with what a client library hides: the raw header lists, whether the answer was
 * trailers-only, the RST_STREAM code, how long the stream stayed open.
 */
export async function rawExchange(port: number, path: string, options: RawExchangeOptions = {}): Promise<RawExchange> {
  const session = http2.connect(`http://127.0.0.1:${port}`, options.settings ? { settings: options.settings } : {});
  session.on("error", () => undefined);
  const started = performance.now();
  try {
    return await new Promise<RawExchange>((resolve) => {
      const request = session.request({ ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers", ...options.headers });
      const answer: RawExchange = { headers: {}, rawHeaders: [], headersEndStream: false, trailers: undefined, rawTrailers: [], body: Buffer.alloc(0), rstCode: 0, closed: false, elapsedMs: 0 };
      const chunks: Buffer[] = [];
      request.on("response", (headers, flags, rawHeaders: string[]) =>
        Object.assign(answer, { headers, rawHeaders, headersEndStream: (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0 }),
      );
      request.on("trailers", (trailers, _flags, rawTrailers: string[]) => Object.assign(answer, { trailers, rawTrailers }));
      request.on("data", (chunk: Buffer) => chunks.push(chunk));
      request.on("error", () => undefined);
      let gaveUp = false;
      const giveUp = setTimeout(() => {
        gaveUp = true;
        request.close(http2.constants.NGHTTP2_CANCEL);
      }, options.waitMs ?? 5000);
      request.on("close", () => {
        clearTimeout(giveUp);
        answer.closed = !gaveUp;
        answer.rstCode = gaveUp ? 0 : (request.rstCode ?? 0);
        answer.body = Buffer.concat(chunks);
        answer.elapsedMs = performance.now() - started;
        resolve(answer);
      });
      if (options.pause) request.pause();
      if (options.body) request.write(options.body);
      if (!options.keepOpen) request.end();
      options.during?.(request);
    });
  } finally {
    session.destroy();
  }
}
