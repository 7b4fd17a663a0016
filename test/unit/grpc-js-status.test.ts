import assert from "node:assert/strict";
import { Code, ConnectError } from "@connectrpc/connect";
import { Metadata, type StatusObject } from "@grpc/grpc-js";
import { statusToConnectError } from "../../src/client/grpc-js-status.js";

describe("grpc-js status to ConnectError", () => {
  it("keeps the code and message of a status", () => {
    const error = statusToConnectError({ code: 14, details: "gone", metadata: new Metadata() }, undefined, false);
    assert.ok(error instanceof ConnectError);
    assert.equal(error.code, Code.Unavailable);
    assert.equal(error.rawMessage, "gone");
  });

  it("does not throw when grpc-js leaves the details undefined (it does on some protocol errors)", () => {
    const status = { code: 13, details: undefined, metadata: new Metadata() } as unknown as StatusObject;
    const error = statusToConnectError(status, undefined, false);
    assert.equal(error.code, Code.Internal);
    assert.equal(error.rawMessage, "");
  });
});
