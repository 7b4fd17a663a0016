import assert from "node:assert/strict";
import { Code, ConnectError } from "@connectrpc/connect";
import { Metadata, type StatusObject } from "@grpc/grpc-js";
import { statusToConnectError } from "../../src/client/wire/status.js";
import { streamResetCode } from "../../src/client/wire/stream-reset.js";

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

  it("says INTERNAL with a useful message when grpc-js gives no code at all (its compression filter does)", () => {
    // What grpc-js 1.14 hands over for an unsupported grpc-encoding: its filter's Error as the status.
    const status = { code: undefined, details: undefined, metadata: new Metadata() } as unknown as StatusObject;
    const error = statusToConnectError(status, undefined, false);
    assert.equal(error.code, Code.Internal);
    assert.match(error.rawMessage, /decompress/);
  });

  it("marks grpc-js's account of a stream reset (CANCELLED, 'Call cancelled', no metadata) with a StreamResetError cause", () => {
    const error = statusToConnectError({ code: 1, details: "Call cancelled", metadata: new Metadata() }, undefined, false);
    assert.equal(error.code, Code.Canceled);
    assert.equal((error.cause as { code?: string } | undefined)?.code, streamResetCode);
  });

  it("keeps a CANCELED status the server sent (it has its own message or metadata) unmarked", () => {
    const metadata = new Metadata();
    metadata.set("x-why", "shutdown");
    for (const status of [{ code: 1, details: "server cancelled", metadata: new Metadata() }, { code: 1, details: "Call cancelled", metadata }]) {
      const error = statusToConnectError(status, undefined, false);
      assert.equal(error.code, Code.Canceled);
      assert.equal(error.cause, undefined);
    }
  });

  it("reads a stream reset once the deadline has passed as DEADLINE_EXCEEDED, before it as a reset", () => {
    const reset = () => ({ code: 1, details: "Call cancelled", metadata: new Metadata() });
    assert.equal(statusToConnectError(reset(), undefined, false, Date.now() - 1).code, Code.DeadlineExceeded);
    assert.equal(statusToConnectError(reset(), undefined, false, Date.now() + 60_000).code, Code.Canceled);
    assert.equal(statusToConnectError(reset(), undefined, false, undefined).code, Code.Canceled);
  });
});
