import assert from "node:assert/strict";
import { decodeGrpcMessage, http2HeadersToHeaders, requestHeaders, statusMetadataOf } from "../../src/client/wire/http2-headers.js";
import { httpStatusToGrpc } from "../../src/client/wire/status.js";
import { encodeGrpcMessage } from "../../src/server/grpc-message.js";

describe("the mesh client's unary wire: HTTP/2 headers both ways", () => {
  it("sends gRPC's own headers, the timeout in whole milliseconds (seconds past 8 digits), and the caller's metadata but what gRPC owns", () => {
    const caller = new Headers({ "x-tag": "a", "content-type": "text/plain", "grpc-timeout": "1S", te: "x", connection: "close" });
    caller.append("x-id-bin", "AQI");
    caller.append("x-id-bin", "AwQ");
    const headers = requestHeaders("/pkg.Svc/M", 1500.2, caller);
    assert.equal(headers[":path"], "/pkg.Svc/M");
    assert.equal(headers["content-type"], "application/grpc");
    assert.equal(headers.te, "trailers");
    assert.equal(headers["grpc-timeout"], "1501m");
    assert.equal(headers["x-tag"], "a");
    assert.deepEqual(headers["x-id-bin"], ["AQI", "AwQ"]);
    assert.equal(headers.connection, undefined);
    assert.equal(requestHeaders("/p", 200_000_000, undefined)["grpc-timeout"], "200000S");
    assert.equal(requestHeaders("/p", undefined, undefined)["grpc-timeout"], undefined);
  });

  it("reads grpc-message as the spec (and our server) encodes it, and keeps text that does not decode", () => {
    for (const text of ['"web" may not call "echo": denied', "ünïcode ✓ 100%", ""]) assert.equal(decodeGrpcMessage(encodeGrpcMessage(text)), text);
    assert.equal(decodeGrpcMessage("50%"), "50%");
    assert.equal(decodeGrpcMessage(undefined), "");
  });

  it("gives trailers without grpc-status and grpc-message, skips what Headers refuses, and decodes -bin metadata", () => {
    const trailers = { ":status": 200, "grpc-status": "3", "grpc-message": "bad", "x-a": ["1", "2"], "x-bad": "\u2603", "x-b-bin": "AQI=, AwQ=" } as unknown as import("node:http2").IncomingHttpHeaders;
    const headers = http2HeadersToHeaders(trailers, true);
    assert.deepEqual([...headers.keys()].sort(), ["x-a", "x-b-bin"]);
    assert.equal(headers.get("x-a"), "1, 2");
    const metadata = statusMetadataOf(trailers);
    assert.deepEqual(metadata.get("grpc-status"), []);
    assert.deepEqual(
      metadata.get("x-b-bin").map((value) => [...(value as Buffer)]),
      [
        [1, 2],
        [3, 4],
      ],
    );
  });

  it("maps an HTTP status without a gRPC status as grpc-js does", () => {
    assert.deepEqual(
      [400, 401, 403, 404, 429, 502, 503, 504, 500].map((status) => httpStatusToGrpc(status)[0]),
      [13, 16, 7, 12, 14, 14, 14, 14, 2],
    );
  });
});
