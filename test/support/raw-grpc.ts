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
    return await new Promise<RawAnswer>((resolve, reject) => {
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
  } finally {
    session.close();
  }
}
