import assert from "node:assert/strict";
import { encodeGrpcMessage } from "../../src/server/grpc-message.js";

describe("encodeGrpcMessage: grpc-message as the gRPC spec and grpc-go encode it", () => {
  it("leaves printable ASCII but % as it is", () => {
    const printable = Array.from({ length: 0x7f - 0x20 }, (_, i) => String.fromCharCode(0x20 + i)).join("").replace("%", "");
    assert.equal(encodeGrpcMessage(printable), printable);
    assert.equal(encodeGrpcMessage(""), "");
  });

  it("encodes %, control bytes and each UTF-8 byte of other characters as %XX, which decodeURIComponent reverses", () => {
    assert.equal(encodeGrpcMessage("100%"), "100%25");
    assert.equal(encodeGrpcMessage("a\nb\tc\x7f"), "a%0Ab%09c%7F");
    assert.equal(encodeGrpcMessage("caf\u00e9 \u{1f600}"), "caf%C3%A9 %F0%9F%98%80");
    for (const text of ["a: b/c, d?", "\u00e9t\u00e9 100% \u2014 ok\r\n", "\u{1f600}%%"]) assert.equal(decodeURIComponent(encodeGrpcMessage(text)), text);
  });
});
