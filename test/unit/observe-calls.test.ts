import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextValues, type StreamRequest, type StreamResponse, type UnaryRequest, type UnaryResponse } from "@connectrpc/connect";
import { EchoRequestSchema, EchoResponseSchema, EchoService, EchoStreamResponseSchema } from "../../gen/meshkit/echo/v1/echo_pb.js";
import { observeCalls } from "../../src/server/interceptors/observe-calls.js";

/** observeCalls: every call reports its end exactly once, with its error, and errors are mapped. */
describe("observeCalls", () => {
  const ends: unknown[] = [];
  const observing = observeCalls(() => ({
    end: (error) => ends.push(error === undefined ? "ok" : ConnectError.from(error).code),
    mapError: (error) => new ConnectError(`mapped: ${ConnectError.from(error).rawMessage}`, ConnectError.from(error).code),
  }));
  beforeEach(() => (ends.length = 0));
  const sequenceOf = (message: unknown) => (message as { sequence: number }).sequence;

  const common = { requestMethod: "POST", url: "http://test/x", signal: new AbortController().signal, header: new Headers(), contextValues: createContextValues() };
  const unaryRequest: UnaryRequest = { ...common, stream: false, service: EchoService, method: EchoService.method.echo, message: create(EchoRequestSchema, { message: "hi" }) } as UnaryRequest;
  const streamRequest = { ...common, stream: true, service: EchoService, method: EchoService.method.echoStream, message: (async function* () {})() } as unknown as StreamRequest;
  const streamOf = (count: number, failAfter?: number) =>
    ({
      stream: true,
      service: EchoService,
      method: EchoService.method.echoStream,
      header: new Headers(),
      trailer: new Headers(),
      message: (async function* () {
        for (let sequence = 1; sequence <= count; sequence++) {
          if (sequence === failAfter) throw new ConnectError("broke", Code.DataLoss);
          yield create(EchoStreamResponseSchema, { sequence });
        }
      })(),
    }) as unknown as StreamResponse;

  it("reports a unary call's success once, and its error mapped", async () => {
    const ok = observing(async () => ({ stream: false, service: EchoService, method: EchoService.method.echo, header: new Headers(), trailer: new Headers(), message: create(EchoResponseSchema, { message: "hi" }) }) as UnaryResponse);
    assert.equal(((await ok(unaryRequest)) as UnaryResponse).message.$typeName, "meshkit.echo.v1.EchoResponse");
    const failing = observing(async () => {
      throw new ConnectError("nope", Code.NotFound);
    });
    await assert.rejects(failing(unaryRequest), (error: ConnectError) => error.rawMessage === "mapped: nope" && error.code === Code.NotFound);
    const throwingSynchronously = observing(() => {
      throw new ConnectError("at once", Code.Internal);
    });
    await assert.rejects(throwingSynchronously(unaryRequest), /mapped: at once/);
    assert.deepEqual(ends, ["ok", Code.NotFound, Code.Internal]);
  });

  it("reports a stream's end when its messages run out, not when the handler returns", async () => {
    const response = (await observing(async () => streamOf(3))(streamRequest)) as StreamResponse;
    assert.deepEqual(ends, []);
    const sequences: number[] = [];
    for await (const message of response.message) sequences.push(sequenceOf(message));
    assert.deepEqual(sequences, [1, 2, 3]);
    assert.deepEqual(ends, ["ok"]);
  });

  it("reports a stream that fails midway with its error, mapped for the caller", async () => {
    const response = (await observing(async () => streamOf(5, 3))(streamRequest)) as StreamResponse;
    const sequences: number[] = [];
    await assert.rejects(
      (async () => {
        for await (const message of response.message) sequences.push(sequenceOf(message));
      })(),
      /mapped: broke/,
    );
    assert.deepEqual(sequences, [1, 2]);
    assert.deepEqual(ends, [Code.DataLoss]);
  });

  it("reports a stream the caller abandons early as over, once", async () => {
    const response = (await observing(async () => streamOf(10))(streamRequest)) as StreamResponse;
    for await (const message of response.message) if (sequenceOf(message) === 2) break;
    assert.deepEqual(ends, ["ok"]);
  });

  it("stacks adjacent observers on one stream wrapper: each reports once, errors mapped innermost first", async () => {
    const seen: string[] = [];
    const named = (name: string) =>
      observeCalls(() => ({
        end: (error) => seen.push(`${name}: ${error === undefined ? "ok" : ConnectError.from(error).rawMessage}`),
        mapError: (error) => new ConnectError(`${name}(${ConnectError.from(error).rawMessage})`, ConnectError.from(error).code),
      }));
    let innerMessages: unknown;
    const chain = named("outer")((request) =>
      named("inner")(async () => streamOf(5, 2))(request).then((response) => {
        innerMessages = (response as StreamResponse).message;
        return response;
      }),
    );
    const response = (await chain(streamRequest)) as StreamResponse;
    assert.equal(response.message, innerMessages, "the outer observer wrapped the stream again");
    await assert.rejects(
      (async () => {
        for await (const _ of response.message) void _;
      })(),
      (error: ConnectError) => error.rawMessage === "outer(inner(broke))",
    );
    assert.deepEqual(seen, ["inner: broke", "outer: inner(broke)"]);
  });
});
