import assert from "node:assert/strict";
import http2 from "node:http2";
import { setTimeout as sleep } from "node:timers/promises";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type ConnectRouter, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { EchoResponseSchema, EchoService, EchoStreamRequestSchema, EchoStreamResponseSchema } from "../../gen/meshkit/echo/v1/echo_pb.js";
import { startServerHost, type ServerHost } from "../../src/server/host.js";
import { grpcFrame, rawCall } from "../support/raw-grpc.js";

/**
 * The host's lean gRPC path (src/server/grpc-stream-handler.ts) must answer exactly as
 * connect-node does. Every case runs against two hosts serving the same routes over real
 * HTTP/2 connections: one with the lean path, one with every call through connect-node.
 */
describe("server host: the lean gRPC path answers as connect-node does", function () {
  this.timeout(30_000);
  const aborted: string[] = [];
  const intercepted: string[] = [];
  /** How many messages each server stream's handler has yielded so far, by the first 16 characters of its request message. */
  const yielded = new Map<string, number>();

  const routes = (router: ConnectRouter) =>
    router.service(EchoService, {
      async echo(request, context) {
        switch (request.message) {
          case "headers":
            context.responseHeader.set("x-answer", "42");
            context.responseTrailer.set("x-trailer", "done");
            return { message: "with headers" };
          case "details":
            throw new ConnectError("precondition failed", Code.FailedPrecondition, undefined, [{ desc: EchoResponseSchema, value: { message: "why" } }]);
          case "crash":
            throw new Error("a secret the caller must not see");
          case "deadline":
            return { message: String(Math.round(context.timeoutMs() ?? -1)) };
          case "slow":
            await new Promise<void>((resolve) => context.signal.addEventListener("abort", () => resolve()));
            aborted.push(`echo: ${ConnectError.from(context.signal.reason).code}`);
            return { message: "too late" };
          default:
            return { message: request.message, instanceId: context.requestHeader.get("x-caller") ?? "" };
        }
      },
      async *echoStream(request, context) {
        for (let sequence = 1; sequence <= request.count; sequence++) {
          yielded.set(request.message.slice(0, 16), sequence);
          yield { message: request.message, sequence };
        }
        if (request.message === "hang") {
          await new Promise<void>((resolve) => context.signal.addEventListener("abort", () => resolve()));
          aborted.push(`stream: ${ConnectError.from(context.signal.reason).code}`);
        }
        if (request.message === "fail") throw new ConnectError("failed after the messages", Code.Aborted);
      },
    });
  const tagging: Interceptor = (next) => async (request) => {
    intercepted.push(`${request.method.name} stream=${request.stream}`);
    if (request.header.get("x-deny") === "yes") throw new ConnectError("denied by an interceptor", Code.PermissionDenied);
    const response = await next(request);
    response.header.set("x-intercepted", "yes");
    return response;
  };

  let lean: ServerHost, connectNode: ServerHost;
  before(async () => {
    lean = await startServerHost({ routes, interceptors: [tagging] });
    connectNode = await startServerHost({ routes, interceptors: [tagging], leanGrpcPath: false });
  });
  after(async () => {
    await Promise.all([lean.drain(1000), connectNode.drain(1000)]);
  });

  const clientOf = (host: ServerHost) => createClient(EchoService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${host.port}` }));
  const bothAnswer = async <T>(call: (client: ReturnType<typeof clientOf>) => Promise<T>): Promise<T> => {
    const [fromLean, fromConnect] = await Promise.all([call(clientOf(lean)), call(clientOf(connectNode))]);
    assert.deepEqual(fromLean, fromConnect, "the lean path answered otherwise than connect-node");
    return fromLean;
  };
  const outcome = async (run: () => Promise<unknown>) => {
    try {
      return { ok: await run() };
    } catch (error) {
      const e = ConnectError.from(error);
      return { code: Code[e.code], message: e.rawMessage, details: e.findDetails(EchoResponseSchema).map((d) => d.message) };
    }
  };

  it("sends the message, response headers and trailers set by the handler and by interceptors", async () => {
    const answer = await bothAnswer(async (client) => {
      let header: Headers | undefined, trailer: Headers | undefined;
      const reply = await client.echo({ message: "headers" }, { onHeader: (h) => (header = h), onTrailer: (t) => (trailer = t) });
      return { message: reply.message, answer: header?.get("x-answer"), intercepted: header?.get("x-intercepted"), trailer: trailer?.get("x-trailer") };
    });
    assert.deepEqual(answer, { message: "with headers", answer: "42", intercepted: "yes", trailer: "done" });
    const caller = await bothAnswer(async (client) => (await client.echo({ message: "hi" }, { headers: { "x-caller": "me" } })).instanceId);
    assert.equal(caller, "me");
  });

  it("fails with the handler's code, message and details; an unexpected error is INTERNAL without its text", async () => {
    assert.deepEqual(await bothAnswer((client) => outcome(() => client.echo({ message: "details" }))), {
      code: "FailedPrecondition",
      message: "precondition failed",
      details: ["why"],
    });
    assert.deepEqual(await bothAnswer((client) => outcome(() => client.echo({ message: "crash" }))), { code: "Internal", message: "internal error", details: [] });
    assert.deepEqual(await bothAnswer((client) => outcome(() => client.echo({ message: "x" }, { headers: { "x-deny": "yes" } }))), {
      code: "PermissionDenied",
      message: "denied by an interceptor",
      details: [],
    });
  });

  it("runs the interceptors on unary and server-streaming calls", async () => {
    intercepted.length = 0;
    await clientOf(lean).echo({ message: "a" });
    for await (const _ of clientOf(lean).echoStream({ message: "b", count: 2 })) void _;
    assert.deepEqual(intercepted, ["Echo stream=false", "EchoStream stream=true"]);
  });

  it("streams every message in order, then a status the handler throws after them", async () => {
    const streamed = await bothAnswer(async (client) => {
      const sequences: number[] = [];
      const result = await outcome(async () => {
        for await (const part of client.echoStream({ message: "fail", count: 3 })) sequences.push(part.sequence);
      });
      return { sequences, result };
    });
    assert.deepEqual(streamed, { sequences: [1, 2, 3], result: { code: "Aborted", message: "failed after the messages", details: [] } });
    // A large stream against HTTP/2 flow control: 300 messages of 64 KiB.
    const big = await bothAnswer(async (client) => {
      let count = 0;
      let bytes = 0;
      for await (const part of client.echoStream({ message: "y".repeat(64 * 1024), count: 300 })) {
        count++;
        bytes += part.message.length;
      }
      return { count, bytes };
    });
    assert.deepEqual(big, { count: 300, bytes: 300 * 64 * 1024 });
  });

  it("holds a server stream back while its client stops reading: the handler waits and the server's memory stays bounded", async () => {
    // 1,000 messages of 64 KiB (64 MiB) to a client that reads none of them: it opens a 1 KiB
    // stream window and never reads, so it sends no WINDOW_UPDATE. The handler must stay
    // suspended at a yield, a few messages in, not run ahead into the stream's write buffer.
    const count = 1000;
    const messageBytes = 64 * 1024;
    for (const [name, host] of [["lean", lean], ["connect-node", connectNode]] as const) {
      const tag = `held-${name}`.padEnd(16, "-").slice(0, 16);
      const body = grpcFrame(toBinary(EchoStreamRequestSchema, create(EchoStreamRequestSchema, { message: tag.padEnd(messageBytes, "y"), count })));
      const session = http2.connect(`http://127.0.0.1:${host.port}`, { settings: { initialWindowSize: 1024 } });
      session.on("error", () => undefined);
      try {
        global.gc?.();
        const externalBefore = process.memoryUsage().arrayBuffers;
        const request = session.request({ ":method": "POST", ":path": "/meshkit.echo.v1.EchoService/EchoStream", "content-type": "application/grpc", te: "trailers" });
        request.on("error", () => undefined);
        request.pause(); // no 'data' listener and paused: nothing is read, nothing acknowledged
        request.end(body);
        await new Promise((resolve) => request.once("response", resolve));
        await sleep(1000); // ample for 1,000 messages when nothing holds the handler back
        const heldAt = yielded.get(tag) ?? 0;
        const externalGrowth = process.memoryUsage().arrayBuffers - externalBefore;
        assert.ok(heldAt >= 1 && heldAt <= 8, `${name}: the handler had yielded ${heldAt} of ${count} messages to a client that read none`);
        assert.ok(externalGrowth < 16 * 2 ** 20, `${name}: the server's buffers grew by ${(externalGrowth / 2 ** 20).toFixed(1)} MiB while its client read nothing`);
        // The client reads again: everything arrives, in full, and the call succeeds.
        let bytes = 0;
        request.on("data", (chunk: Buffer) => (bytes += chunk.length));
        const trailers = new Promise<http2.IncomingHttpHeaders>((resolve) => request.once("trailers", resolve));
        request.resume();
        assert.equal((await trailers)["grpc-status"], "0", name);
        assert.equal(yielded.get(tag), count, name);
        const encoded = toBinary(EchoStreamResponseSchema, create(EchoStreamResponseSchema, { message: tag.padEnd(messageBytes, "y"), sequence: 1 })).length;
        assert.ok(bytes >= count * (5 + encoded), `${name}: ${bytes} bytes arrived`);
      } finally {
        session.destroy();
      }
    }
  });

  it("gives the handler the caller's deadline and answers DEADLINE_EXCEEDED when it passes", async () => {
    const left = Number((await clientOf(lean).echo({ message: "deadline" }, { timeoutMs: 5000 })).message);
    assert.ok(left > 4000 && left <= 5000, `timeoutMs() gave ${left}`);
    aborted.length = 0;
    // The deadline as a header only: a client-side timer would race the server's (and cancel).
    const slow = (host: ServerHost) => outcome(() => clientOf(host).echo({ message: "slow" }, { headers: { "grpc-timeout": "200m" } }));
    const started = performance.now();
    assert.deepEqual(await slow(lean), { code: "DeadlineExceeded", message: "the operation timed out", details: [] });
    assert.ok(performance.now() - started < 2000);
    // The one deliberate difference: connect-node aborts the handler's signal too, but then
    // sends whatever the handler answers; the lean path answers DEADLINE_EXCEEDED at the
    // deadline, as grpc-js and grpc-go do.
    assert.deepEqual(await slow(connectNode), { ok: create(EchoResponseSchema, { message: "too late" }) });
    await sleep(100);
    assert.deepEqual(aborted, ["echo: 4", "echo: 4"], "both handlers saw their signal aborted with DEADLINE_EXCEEDED");
  });

  it("aborts the handler's signal when the caller cancels a stream", async () => {
    aborted.length = 0;
    const controller = new AbortController();
    const client = clientOf(lean);
    const result = await outcome(async () => {
      for await (const part of client.echoStream({ message: "hang", count: 1 }, { signal: controller.signal })) {
        if (part.sequence === 1) setTimeout(() => controller.abort(), 50);
      }
    });
    assert.equal(result.code, "Canceled");
    await sleep(200);
    assert.deepEqual(aborted, ["stream: 1"]);
  });

  it("answers malformed frames as connect-node does", async () => {
    const path = "/meshkit.echo.v1.EchoService/Echo";
    const cases: [string, Buffer][] = [
      ["no message", Buffer.alloc(0)],
      ["half a prefix", Buffer.from([0, 0])],
      ["truncated", grpcFrame(Buffer.from([10, 1]), 1000)],
      ["not protobuf", grpcFrame(Buffer.from([0xff, 0xff, 0xff]))],
      ["two messages", Buffer.concat([grpcFrame(Buffer.from([10, 1, 97])), grpcFrame(Buffer.from([10, 1, 98]))])],
      ["compressed flag without encoding", Buffer.from([1, 0, 0, 0, 0])],
      ["over the 4 MiB limit", grpcFrame(Buffer.alloc(5 * 1024 * 1024, 1))],
    ];
    for (const [name, body] of cases) {
      const [fromLean, fromConnect] = await Promise.all([rawCall(lean.port, path, body), rawCall(connectNode.port, path, body)]);
      assert.deepEqual(fromLean, fromConnect, `${name}: lean ${JSON.stringify(fromLean)}, connect-node ${JSON.stringify(fromConnect)}`);
      assert.notEqual(fromLean.grpcStatus, 0, `${name} was accepted`);
    }
    const valid = await rawCall(lean.port, path, grpcFrame(new Uint8Array([10, 2, 104, 105])));
    assert.deepEqual(valid, { httpStatus: 200, grpcStatus: 0, grpcMessage: "" });
  });

  it("frames the response as connect-node does: headers, then trailers, also with no message or an error", async () => {
    // What arrives, frame by frame, without the date header: rawCall merges headers and trailers.
    const exchange = (port: number, path: string, body: Buffer, extra: http2.OutgoingHttpHeaders = {}) =>
      new Promise<string[]>((resolve, reject) => {
        const session = http2.connect(`http://127.0.0.1:${port}`);
        session.on("error", reject);
        const events: string[] = [];
        const request = session.request({ ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers", ...extra });
        // grpc-message compared as text: the lean path percent-encodes it as grpc-go does,
        // connect-node with encodeURIComponent (grpc-server-answers.test.ts checks the bytes).
        const decoded = (fields: http2.IncomingHttpHeaders) => (fields["grpc-message"] === undefined ? fields : { ...fields, "grpc-message": decodeURIComponent(String(fields["grpc-message"])) });
        request.on("response", (headers) => events.push(`headers ${JSON.stringify({ ...decoded(headers), date: undefined })}`));
        request.on("data", (chunk: Buffer) => events.push(`data ${chunk.length}`));
        request.on("trailers", (trailers) => events.push(`trailers ${JSON.stringify(decoded(trailers))}`));
        request.on("error", reject);
        request.on("close", () => {
          session.close();
          resolve(events);
        });
        request.end(body);
      });
    const streamRequest = (count: number) => grpcFrame(new Uint8Array([10, 1, 120, 16, count]));
    const cases: [string, string, Buffer, http2.OutgoingHttpHeaders?][] = [
      ["no message", "/meshkit.echo.v1.EchoService/EchoStream", streamRequest(0)],
      ["two messages", "/meshkit.echo.v1.EchoService/EchoStream", streamRequest(2)],
      ["error after messages", "/meshkit.echo.v1.EchoService/EchoStream", grpcFrame(new Uint8Array([10, 4, 102, 97, 105, 108, 16, 1]))],
      ["unary", "/meshkit.echo.v1.EchoService/Echo", grpcFrame(new Uint8Array([10, 2, 104, 105]))],
      ["unparsable", "/meshkit.echo.v1.EchoService/Echo", grpcFrame(Buffer.from([0xff, 0xff]))],
      ["bad grpc-timeout", "/meshkit.echo.v1.EchoService/Echo", grpcFrame(Buffer.alloc(0)), { "grpc-timeout": "soon" }],
    ];
    for (const [name, path, body, extra] of cases) {
      const [fromLean, fromConnect] = await Promise.all([exchange(lean.port, path, body, extra), exchange(connectNode.port, path, body, extra)]);
      assert.deepEqual(fromLean, fromConnect, name);
      assert.match(fromLean.at(-1)!, /^trailers .*grpc-status/, `${name}: ${fromLean.join(" | ")}`);
    }
  });
});
