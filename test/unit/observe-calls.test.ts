import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextValues, type StreamRequest, type StreamResponse, type UnaryRequest, type UnaryResponse } from "@connectrpc/connect";
import { EchoRequestSchema, EchoResponseSchema, EchoService, EchoStreamResponseSchema } from "../../gen/meshkit/echo/v1/echo_pb.js";
import { AsyncLocalStorage } from "node:async_hooks";
import type { Interceptor } from "@connectrpc/connect";
import { fuseObservers, observeCalls } from "../../src/server/interceptors/observe-calls.js";

/** An echo stream response of `count` messages that fails with DATA_LOSS at `failAfter`, if given. */
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

/**
 * fuseObservers: a chain whose adjacent observers run as one layer reports exactly what the same
 * chain of separate layers reports (order, mapped errors, the context each part runs in), and
 * leaves other interceptors where they were.
 */
describe("fuseObservers", () => {
  const common = { requestMethod: "POST", url: "http://test/x", signal: new AbortController().signal, header: new Headers() };
  const unaryRequest = () => ({ ...common, contextValues: createContextValues(), stream: false, service: EchoService, method: EchoService.method.echo, message: create(EchoRequestSchema, { message: "hi" }) }) as UnaryRequest;
  const streamRequest = () => ({ ...common, contextValues: createContextValues(), stream: true, service: EchoService, method: EchoService.method.echoStream, message: (async function* () {})() }) as unknown as StreamRequest;
  const answer: Parameters<Interceptor>[0] = async () => ({ stream: false, service: EchoService, method: EchoService.method.echo, header: new Headers(), trailer: new Headers(), message: create(EchoResponseSchema, { message: "hi" }) }) as UnaryResponse;
  const stream: Parameters<Interceptor>[0] = async () => streamOf(3, 2);

  /** What a chain did: every start, end and mapping, with the scope it ran in. */
  const scope = new AsyncLocalStorage<string>();
  const recorder = () => {
    const events: string[] = [];
    const observer = (name: string, { throwsAtStart = false } = {}) =>
      observeCalls(() => {
        events.push(`${name} start in ${scope.getStore() ?? "-"}`);
        if (throwsAtStart) throw new ConnectError(`${name} refused`, Code.PermissionDenied);
        return {
          run: (next) => scope.run(`${scope.getStore() ?? ""}/${name}`, next),
          // Fused, an observer's end runs inside the runs of those fused after it too (one
          // continuation for all): what matters is that its own scope is there.
          end: (error) => events.push(`${name} end ${error === undefined ? "ok" : ConnectError.from(error).rawMessage} inside its own run: ${(scope.getStore() ?? "").includes(`/${name}`)}`),
          mapError: (error) => new ConnectError(`${name}(${ConnectError.from(error).rawMessage})`, ConnectError.from(error).code),
        };
      });
    const plain: Interceptor = (next) => (request) => {
      events.push(`plain in ${scope.getStore() ?? "-"}`);
      return next(request);
    };
    return { events, observer, plain };
  };
  type AnyFn = Parameters<Interceptor>[0];
  const chainOf = (interceptors: Interceptor[], handler: AnyFn) => interceptors.reduceRight((next, interceptor) => interceptor(next), handler);
  /** Runs `call` on the chain as built, and fused; both must record the same events and end alike. */
  const same = async (build: (r: ReturnType<typeof recorder>) => Interceptor[], handler: AnyFn, call: (chain: AnyFn) => Promise<unknown>) => {
    const outcome = async (fuse: boolean) => {
      const r = recorder();
      const interceptors = build(r);
      const chain = chainOf(fuse ? fuseObservers(interceptors) : interceptors, handler);
      const result = await call(chain).then(
        (value) => `ok ${String(value)}`,
        (error: unknown) => `failed ${ConnectError.from(error).rawMessage}`,
      );
      return { result, events: r.events, layers: (fuse ? fuseObservers(interceptors) : interceptors).length };
    };
    const separate = await outcome(false);
    const fused = await outcome(true);
    assert.deepEqual(fused.events, separate.events);
    assert.equal(fused.result, separate.result);
    return { ...fused, separateLayers: separate.layers };
  };

  it("joins only adjacent observers", () => {
    const { observer, plain } = recorder();
    assert.equal(fuseObservers([observer("a"), observer("b"), plain, observer("c"), plain, plain, observer("d"), observer("e")]).length, 6);
    assert.equal(fuseObservers([plain, plain]).length, 2);
  });

  it("a unary success: starts outermost first, each in the scope of those before it; ends innermost first", async () => {
    const { events, layers, separateLayers } = await same(({ observer, plain }) => [observer("a"), observer("b"), plain, observer("c")], answer, (chain) => chain(unaryRequest()).then(() => "answered"));
    assert.equal(layers, 3);
    assert.equal(separateLayers, 4);
    assert.equal(events[0], "a start in -");
    assert.equal(events[1], "b start in /a");
    assert.ok(events.includes("plain in /a/b"));
  });

  it("a unary failure: mapped innermost first, each observer told the error the inner ones made of it", async () => {
    const failing: Parameters<Interceptor>[0] = async () => {
      throw new ConnectError("nope", Code.NotFound);
    };
    const { result } = await same(({ observer }) => [observer("a"), observer("b"), observer("c")], failing, (chain) => chain(unaryRequest()));
    assert.equal(result, "failed a(b(c(nope)))");
  });

  it("an observer that refuses at its start: the ones started before it are told, the rest never start", async () => {
    const { result, events } = await same(({ observer }) => [observer("a"), observer("b", { throwsAtStart: true }), observer("c")], answer, (chain) => chain(unaryRequest()));
    assert.equal(result, "failed a(b refused)");
    assert.ok(!events.some((event) => event.startsWith("c ")));
  });

  it("a stream that fails midway: one wrapper, each observer told once, errors mapped innermost first", async () => {
    const read = async (chain: AnyFn) => {
      const response = (await chain(streamRequest())) as StreamResponse;
      for await (const _ of response.message) void _;
    };
    const { result } = await same(({ observer }) => [observer("a"), observer("b")], stream, read);
    assert.equal(result, "failed a(b(broke))");
  });
});
