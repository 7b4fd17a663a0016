import assert from "node:assert/strict";
import http from "node:http";
import http2 from "node:http2";
import { Writable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { gunzipSync } from "node:zlib";
import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { Registry } from "prom-client";
import { EchoRequestSchema, EchoResponseSchema, EchoService, EchoStreamRequestSchema } from "../../gen/meshkit/echo/v1/echo_pb.js";
import { createLogger } from "../../src/platform/log.js";
import { errorMapping } from "../../src/server/interceptors/errors.js";
import { startServerHost, type ServerHost, type ServerHostOptions } from "../../src/server/host.js";
import { codec } from "../support/grpc-js-server.js";
import { grpcFrame, rawCall, rawExchange } from "../support/raw-grpc.js";

const echoPath = `/${EchoService.typeName}/Echo`;
const streamPath = `/${EchoService.typeName}/EchoStream`;
const echoRequest = (message: string) => grpcFrame(toBinary(EchoRequestSchema, create(EchoRequestSchema, { message })));
const streamRequest = (message: string, count: number) => grpcFrame(toBinary(EchoStreamRequestSchema, create(EchoStreamRequestSchema, { message, count })));


/** One unary Echo call from a grpc-js client: the reply, or the status it failed with. */
function grpcJsEcho(client: grpc.Client, path: string, message: string, deadlineMs = 10_000) {
  return new Promise<{ message?: string; code?: number; details?: string; ms: number }>((resolve) => {
    const started = performance.now();
    client.makeUnaryRequest(path, codec(EchoRequestSchema).serialize, codec(EchoResponseSchema).deserialize, create(EchoRequestSchema, { message }), { deadline: Date.now() + deadlineMs }, (error, reply) =>
      resolve(error ? { code: error.code, details: error.details, ms: performance.now() - started } : { message: reply!.message, ms: performance.now() - started }),
    );
  });
}

/** The gRPC messages of a response body: each one's compressed flag and payload (gunzipped when flagged). */
function messagesOf(body: Buffer): { flag: number; payload: Buffer }[] {
  const messages = [];
  for (let at = 0; at + 5 <= body.length; ) {
    const flag = body[at]!;
    const length = body.readUInt32BE(at + 1);
    const raw = body.subarray(at + 5, at + 5 + length);
    messages.push({ flag, payload: flag === 1 ? gunzipSync(raw) : raw });
    at += 5 + length;
  }
  return messages;
}

/**
 * gRPC answers as grpc-go and grpc-js servers give them (issue 23), checked on both of the
 * host's paths: the lean gRPC path and connect-node (leanGrpcPath: false), over real HTTP/2
 * connections, with grpc-js clients and with a raw HTTP/2 client for what a library hides.
 */
describe("server host: gRPC answers as grpc-go and grpc-js servers give them, on both paths", function () {
  this.timeout(60_000);
  /** Requests whose handler ran, by message. */
  const handled: string[] = [];
  /** Streams whose handler's generator was finalized (its `finally` ran), by message. */
  const finalized: string[] = [];

  const routes = (router: ConnectRouter) =>
    router.service(EchoService, {
      echo(request, context) {
        handled.push(request.message);
        if (request.message.startsWith("fail:")) throw new ConnectError(request.message.slice("fail:".length), Code.FailedPrecondition);
        if (request.message === "bin") {
          for (const value of ["AAEC", "AwQF"]) {
            context.responseHeader.append("x-data-bin", value);
            context.responseTrailer.append("x-more-bin", value);
          }
        }
        return { message: request.message };
      },
      async *echoStream(request) {
        try {
          for (let sequence = 1; request.count === 0 || sequence <= request.count; sequence++) yield { message: request.message, sequence };
        } finally {
          finalized.push(request.message);
        }
      },
    });

  const hosts: ServerHost[] = [];
  const start = async (options: Partial<ServerHostOptions> = {}) => {
    const host = await startServerHost({ routes, ...options });
    hosts.push(host);
    return host;
  };
  let lean: ServerHost, connectNode: ServerHost;
  const both = () =>
    [
      ["lean", lean],
      ["connect-node", connectNode],
    ] as const;
  before(async () => {
    lean = await start({ metrics: new Registry() });
    connectNode = await start({ leanGrpcPath: false, metrics: new Registry() });
  });
  after(async () => {
    await Promise.all(hosts.map((host) => host.drain(1000)));
  });

  it("answers an unknown service or method UNIMPLEMENTED, trailers-only, naming it as grpc-go does", async () => {
    for (const [name, host] of both()) {
      for (const [path, message] of [
        ["/no.such.v1.Service/Method", "unknown service no.such.v1.Service"],
        [`/${EchoService.typeName}/DeleteEverything`, `unknown method DeleteEverything for service ${EchoService.typeName}`],
      ] as const) {
        const answer = await rawExchange(host.port, path, { body: echoRequest("x") });
        assert.equal(answer.headers[":status"], 200, `${name} ${path}`);
        assert.equal(answer.headers["content-type"], "application/grpc", `${name} ${path}`);
        assert.equal(answer.headers["grpc-status"], "12", `${name} ${path}`);
        assert.equal(decodeURIComponent(String(answer.headers["grpc-message"])), message, `${name} ${path}`);
        assert.ok(answer.headersEndStream && answer.trailers === undefined, `${name} ${path}: not trailers-only`);
        assert.equal(answer.body.length, 0, `${name} ${path}`);
        // grpc-js reads it as such.
        const client = new grpc.Client(`127.0.0.1:${host.port}`, grpc.credentials.createInsecure());
        try {
          const failure = await grpcJsEcho(client, path, "x");
          assert.deepEqual([failure.code, failure.details], [grpc.status.UNIMPLEMENTED, message], `${name} ${path} via grpc-js`);
        } finally {
          client.close();
        }
      }
      // gRPC-Web, over HTTP/2 and HTTP/1.1: the same status, in the headers of an empty answer.
      const web = await rawExchange(host.port, "/no.such.v1.Service/Method", { body: echoRequest("x"), headers: { "content-type": "application/grpc-web+proto" } });
      assert.deepEqual([web.headers[":status"], web.headers["grpc-status"], web.headersEndStream], [200, "12", true], `${name} gRPC-Web`);
      const webHttp1 = await new Promise<http.IncomingMessage>((resolve, reject) => {
        const request = http.request({ host: "127.0.0.1", port: host.port, method: "POST", path: "/no.such.v1.Service/Method", headers: { "content-type": "application/grpc-web+proto" } }, resolve);
        request.on("error", reject);
        request.end(echoRequest("x"));
      });
      webHttp1.resume();
      assert.deepEqual(
        [webHttp1.statusCode, webHttp1.headers["grpc-status"], decodeURIComponent(String(webHttp1.headers["grpc-message"]))],
        [200, "12", "unknown service no.such.v1.Service"],
        `${name} gRPC-Web over HTTP/1.1`,
      );
      // Connect, and anything that is not an RPC, keep connect-node's answer; /metrics still works.
      const connect = await rawCall(host.port, "/no.such.v1.Service/Method", Buffer.from("{}"), "application/json");
      assert.equal(connect.httpStatus, 404, `${name} Connect`);
      const metrics = await fetch(`http://127.0.0.1:${host.port}/metrics`);
      assert.equal(metrics.status, 200, `${name} /metrics`);
      await metrics.text();
    }
  });

  it("percent-encodes grpc-message as grpc-go does (only bytes outside printable ASCII, and %), so grpc-js reads a failure's message as it was written", async () => {
    const message = `"web" may not call "echo": denied, 100% of 1/1 \u2014 \u2713`;
    const answer = await rawExchange(lean.port, echoPath, { body: echoRequest(`fail:${message}`) });
    const status = answer.trailers ?? answer.headers;
    assert.equal(status["grpc-status"], "9");
    assert.equal(status["grpc-message"], `"web" may not call "echo": denied, 100%25 of 1/1 %E2%80%94 %E2%9C%93`);
    const client = new grpc.Client(`127.0.0.1:${lean.port}`, grpc.credentials.createInsecure());
    try {
      const failure = await grpcJsEcho(client, echoPath, `fail:${message}`);
      assert.deepEqual([failure.code, failure.details], [grpc.status.FAILED_PRECONDITION, message]);
    } finally {
      client.close();
    }
  });

  it("ends a server stream whose client stopped reading when the deadline passes, and finalizes the handler", async () => {
    for (const [name, host] of both()) {
      const message = `unread-${name}`;
      const answer = await rawExchange(host.port, streamPath, {
        body: streamRequest(message, 0),
        headers: { "grpc-timeout": "300m" },
        settings: { initialWindowSize: 1024 },
        pause: true,
        waitMs: 3000,
      });
      assert.ok(answer.closed, `${name}: the stream was still open ${Math.round(answer.elapsedMs)} ms after a 300 ms deadline`);
      assert.ok(answer.trailers?.["grpc-status"] === "4" || answer.rstCode === http2.constants.NGHTTP2_CANCEL, `${name}: trailers ${JSON.stringify(answer.trailers)}, RST_STREAM ${answer.rstCode}`);
      assert.ok(answer.elapsedMs < 1500, `${name}: closed after ${Math.round(answer.elapsedMs)} ms`);
      await sleep(100);
      assert.ok(finalized.includes(message), `${name}: the handler's generator was not finalized`);
    }
  });

  it("never starts a handler for a call already answered DEADLINE_EXCEEDED", async () => {
    for (const [name, host] of both()) {
      const message = `late-${name}`;
      const body = echoRequest(message);
      const answer = await rawExchange(host.port, echoPath, {
        body: body.subarray(0, 3),
        keepOpen: true,
        headers: { "grpc-timeout": "50m" },
        during: (request) =>
          void setTimeout(() => {
            if (!request.closed) request.end(body.subarray(3));
          }, 300),
      });
      assert.equal(answer.trailers?.["grpc-status"] ?? answer.headers["grpc-status"], "4", `${name}: ${JSON.stringify(answer.trailers ?? answer.headers)}`);
      await sleep(200);
      assert.ok(!handled.includes(message), `${name}: the handler ran after the deadline had passed`);
    }
  });

  it("closes a refused request's stream after its trailers (RST_STREAM NO_ERROR) instead of reading the rest", async () => {
    const oversized = Buffer.concat([grpcFrame(Buffer.alloc(0), 5 * 1024 * 1024), Buffer.alloc(1024, 1)]);
    // A whole message flagged compressed, in a call that named no encoding; the client then
    // sends nothing more and never ends its body.
    const badFlag = Buffer.concat([Buffer.from([1, 0, 0, 0, 100]), Buffer.alloc(100, 1)]);
    for (const [name, host] of both()) {
      for (const [what, body, code] of [
        ["over the receive limit", oversized, "8"],
        ["compressed flag without an encoding", badFlag, "13"],
      ] as const) {
        // The client never finishes its body: only the server can close the stream.
        const answer = await rawExchange(host.port, echoPath, { body, keepOpen: true, waitMs: 3000 });
        assert.equal(answer.trailers?.["grpc-status"], code, `${name}, ${what}: ${JSON.stringify(answer.trailers)}`);
        assert.ok(answer.closed, `${name}, ${what}: the stream stayed open, the server waiting for the rest of the body`);
        assert.equal(answer.rstCode, http2.constants.NGHTTP2_NO_ERROR, `${name}, ${what}`);
      }
    }
  });

  it("refuses a request over 4 MiB from a client allowed to send it with RESOURCE_EXHAUSTED at once, not at the deadline", async () => {
    for (const [name, host] of both()) {
      const client = new grpc.Client(`127.0.0.1:${host.port}`, grpc.credentials.createInsecure(), { "grpc.max_send_message_length": -1 });
      try {
        const answer = await grpcJsEcho(client, echoPath, "x".repeat(5 * 1024 * 1024), 10_000);
        assert.equal(answer.code, grpc.status.RESOURCE_EXHAUSTED, `${name}: ${answer.code} ${answer.details}`);
        assert.ok(answer.ms < 3000, `${name}: answered after ${Math.round(answer.ms)} ms`);
      } finally {
        client.close();
      }
    }
  });

  it("compresses a response message of at least compressMinBytes with gzip when the client accepts it; compression: false turns it off", async () => {
    const off = [
      ["lean, compression off", await start({ compression: false })],
      ["connect-node, compression off", await start({ leanGrpcPath: false, compression: false })],
    ] as const;
    const big = "z".repeat(5000);
    for (const [name, host] of [...both(), ...off]) {
      const compressing = !name.includes("off");
      const accept = { "grpc-accept-encoding": "gzip" };
      const unary = await rawExchange(host.port, echoPath, { body: echoRequest(big), headers: accept });
      const [reply] = messagesOf(unary.body);
      assert.equal(reply?.flag, compressing ? 1 : 0, `${name}: compressed flag of a 5000-byte reply`);
      assert.equal(unary.headers["grpc-encoding"], compressing ? "gzip" : undefined, name);
      assert.equal(fromBinary(EchoResponseSchema, reply!.payload).message, big, name);
      assert.equal(unary.trailers?.["grpc-status"], "0", name);
      const tiny = await rawExchange(host.port, echoPath, { body: echoRequest("hi"), headers: accept });
      assert.equal(messagesOf(tiny.body)[0]?.flag, 0, `${name}: a tiny reply is never compressed`);
      const streamed = await rawExchange(host.port, streamPath, { body: streamRequest(big, 3), headers: accept });
      assert.deepEqual(
        messagesOf(streamed.body).map((m) => m.flag),
        compressing ? [1, 1, 1] : [0, 0, 0],
        `${name}: stream`,
      );
      // Not accepted: never compressed.
      const plain = await rawExchange(host.port, echoPath, { body: echoRequest(big) });
      assert.equal(messagesOf(plain.body)[0]?.flag, 0, `${name}: compressed for a client that did not accept it`);
      // A grpc-js client (it sends grpc-accept-encoding: identity,deflate,gzip) reads it.
      const client = new grpc.Client(`127.0.0.1:${host.port}`, grpc.credentials.createInsecure());
      try {
        const answer = await grpcJsEcho(client, echoPath, big);
        assert.equal(answer.message, big, `${name} via grpc-js: ${answer.code} ${answer.details}`);
      } finally {
        client.close();
      }
    }
    // The threshold counts the serialized message: a field tag and a one-byte length here, then the text.
    const threshold = [await start({ compressMinBytes: 100 }), await start({ leanGrpcPath: false, compressMinBytes: 100 })];
    for (const host of threshold) {
      const flags = [];
      for (const size of [97, 98, 200]) flags.push(messagesOf((await rawExchange(host.port, echoPath, { body: echoRequest("q".repeat(size)), headers: { "grpc-accept-encoding": "gzip" } })).body)[0]?.flag);
      assert.deepEqual(flags, [0, 1, 1], `compressMinBytes 100, leanGrpcPath ${host === threshold[0]}`);
    }
  });

  it("sends repeated -bin headers and trailers as separate values", async () => {
    for (const [name, host] of both()) {
      const answer = await rawExchange(host.port, echoPath, { body: echoRequest("bin") });
      const values = (raw: string[], key: string) => raw.filter((_, i) => i % 2 === 1 && raw[i - 1] === key);
      assert.deepEqual(values(answer.rawHeaders, "x-data-bin"), ["AAEC", "AwQF"], `${name}: headers ${JSON.stringify(answer.rawHeaders)}`);
      assert.deepEqual(values(answer.rawTrailers, "x-more-bin"), ["AAEC", "AwQF"], `${name}: trailers ${JSON.stringify(answer.rawTrailers)}`);
    }
  });

  it("refuses a message whose compressed-flag byte is neither 0 nor 1 with INTERNAL", async () => {
    for (const flag of [2, 0x80, 0xff]) {
      const body = echoRequest("flagged");
      body[0] = flag;
      const [fromLean, fromConnect] = await Promise.all([rawCall(lean.port, echoPath, body), rawCall(connectNode.port, echoPath, body)]);
      assert.deepEqual(fromLean, { httpStatus: 200, grpcStatus: 13, grpcMessage: `protocol error: compressed-flag ${flag} is neither 0 nor 1` }, `flag ${flag}`);
      assert.deepEqual(fromConnect, fromLean, `flag ${flag}: connect-node answered otherwise`);
    }
    assert.ok(!handled.includes("flagged"), "a handler ran");
  });

  it("logs a client's hang-up at debug, not at error", async () => {
    const lines: { level: number; msg: string }[] = [];
    const log = createLogger("hang-ups", {}, new Writable({ write: (chunk: Buffer, _encoding, done) => (lines.push(JSON.parse(chunk.toString()) as { level: number; msg: string }), done()) }));
    log.level = "debug";
    const printed: unknown[][] = [];
    const consoleError = console.error;
    console.error = (...args: unknown[]) => void printed.push(args);
    try {
      for (const leanGrpcPath of [true, false]) {
        const host = await start({ leanGrpcPath, log, interceptors: [errorMapping(log)] });
        // A stream the client stops reading, then resets (while the server still has data to write).
        for (const contentType of ["application/grpc", "application/grpc-web+proto", "application/connect+proto"]) {
          const body = contentType.startsWith("application/connect") ? Buffer.concat([Buffer.from([0]), streamRequest("y".repeat(10_000), 100).subarray(1)]) : streamRequest("y".repeat(10_000), 100);
          await rawExchange(host.port, streamPath, {
            body,
            headers: { "content-type": contentType },
            settings: { initialWindowSize: 1024 },
            pause: true,
            during: (request) => void setTimeout(() => request.close(http2.constants.NGHTTP2_CANCEL), 100),
          });
        }
        await sleep(200);
      }
    } finally {
      console.error = consoleError;
    }
    assert.deepEqual(printed, [], "printed to stderr");
    assert.ok(
      lines.some((line) => line.level === 20 && line.msg === "the client went away before its answer was written"),
      "the hang-ups were not logged at debug",
    );
    assert.deepEqual(
      lines.filter((line) => line.level > 20),
      [],
      "logged above debug",
    );
  });
});
