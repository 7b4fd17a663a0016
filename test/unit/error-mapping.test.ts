import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextValues, type UnaryRequest } from "@connectrpc/connect";
import { EchoRequestSchema, EchoService } from "../../gen/meshkit/echo/v1/echo_pb.js";
import { createLogger } from "../../src/platform/log.js";
import { errorMapping } from "../../src/server/interceptors/errors.js";

/** errorMapping: the code a failure is answered with, and the level it is logged at. */
describe("errorMapping", () => {
  const lines: { level: number; msg: string }[] = [];
  const log = createLogger("error-mapping-test", {}, new Writable({ write: (chunk: Buffer, _encoding, done) => (lines.push(JSON.parse(chunk.toString()) as { level: number; msg: string }), done()) }));
  log.level = "debug";
  beforeEach(() => (lines.length = 0));
  const requestWith = (signal: AbortSignal) =>
    ({ stream: false, service: EchoService, method: EchoService.method.echo, requestMethod: "POST", url: "http://test/x", signal, header: new Headers(), contextValues: createContextValues(), message: create(EchoRequestSchema, { message: "hi" }) }) as UnaryRequest;
  const failingWith = (error: unknown) =>
    errorMapping(log)(async () => {
      throw error;
    });
  const outcome = async (call: Promise<unknown>) => {
    try {
      await call;
      return "no error";
    } catch (error) {
      const connectError = ConnectError.from(error);
      return `${Code[connectError.code]}: ${connectError.rawMessage}`;
    }
  };
  const levels = () => lines.map((line) => `${line.level >= 50 ? "error" : line.level >= 40 ? "warn" : "debug"}: ${line.msg}`);

  it("answers an unexpected error INTERNAL without its text, and logs it at error level", async () => {
    assert.equal(await outcome(failingWith(new Error("a secret"))(requestWith(new AbortController().signal))), "Internal: internal error");
    assert.deepEqual(levels(), ["error: unexpected error"]);
  });

  it("answers a failure after the caller cancelled with the cancellation, logged at debug level only", async () => {
    const controller = new AbortController();
    controller.abort(new ConnectError("the client cancelled the call", Code.Canceled));
    const hangUp = Object.assign(new Error("Cannot call write after a stream was destroyed"), { code: "ERR_STREAM_DESTROYED" });
    assert.equal(await outcome(failingWith(hangUp)(requestWith(controller.signal))), "Canceled: the client cancelled the call");
    assert.deepEqual(levels(), ["debug: failed after the call had ended"]);
  });

  it("answers a failure after the deadline passed with DEADLINE_EXCEEDED", async () => {
    const controller = new AbortController();
    controller.abort(new ConnectError("the operation timed out", Code.DeadlineExceeded));
    assert.equal(await outcome(failingWith(new Error("Premature close"))(requestWith(controller.signal))), "DeadlineExceeded: the operation timed out");
  });

  it("passes a ConnectError through as it is, even after the call ended", async () => {
    const controller = new AbortController();
    controller.abort();
    assert.equal(await outcome(failingWith(new ConnectError("no such user", Code.NotFound))(requestWith(controller.signal))), "NotFound: no such user");
    assert.deepEqual(levels(), []);
  });
});
