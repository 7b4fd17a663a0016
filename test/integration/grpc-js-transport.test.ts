import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { create, type DescMethodBiDiStreaming, type DescMethodClientStreaming, type DescMethodUnary } from "@bufbuild/protobuf";
import { MethodOptions_IdempotencyLevel, StringValueSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type ConnectRouter, type Interceptor } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { Registry } from "prom-client";
import { EchoService, EchoStreamRequestSchema, EchoStreamResponseSchema, type EchoStreamRequest, type EchoStreamResponse } from "../../gen/meshkit/echo/v1/echo_pb.js";
import { createGrpcJsTransport, type GrpcJsTransport } from "../../src/client/wire/grpc-js-wire.js";
import { createMeshTransport, staticResolver } from "../../src/client/index.js";
import { neverSent } from "../../src/client/retry/policy.js";
import { createTestPki } from "../support/certificates.js";
import { freePort } from "../support/free-port.js";

// The echo proto has a unary and a server-streaming method; a client stream and a bidi stream of
// the same messages, served under other names, cover the two other kinds.
const clientStream = { ...EchoService.method.echoStream, name: "EchoCollect", localName: "echoCollect", methodKind: "client_streaming" } as unknown as DescMethodClientStreaming<typeof EchoStreamRequestSchema, typeof EchoStreamResponseSchema>;
const bidiStream = { ...EchoService.method.echoStream, name: "EchoBidi", localName: "echoBidi", methodKind: "bidi_streaming" } as unknown as DescMethodBiDiStreaming<typeof EchoStreamRequestSchema, typeof EchoStreamResponseSchema>;
// Echo as a method the proto does not mark idempotent: only a never-sent failure may be retried.
const unsafeEcho = { ...EchoService.method.echo, idempotency: MethodOptions_IdempotencyLevel.IDEMPOTENCY_UNKNOWN } as DescMethodUnary<typeof EchoService.method.echo.input, typeof EchoService.method.echo.output>;

const detail = create(StringValueSchema, { value: "a detail" });

function routes(router: ConnectRouter) {
  router.service(EchoService, {
    async echo(request, context) {
      if (request.message === "fail") {
        const error = new ConnectError("it failed", Code.FailedPrecondition, { "x-why": "because" }, [{ desc: StringValueSchema, value: detail }]);
        throw error;
      }
      if (request.message === "slow") await sleep(2000, undefined, { signal: context.signal }).catch(() => undefined);
      context.responseHeader.set("x-echo", context.requestHeader.get("x-tag") ?? "none");
      context.responseHeader.set("x-raw-bin", context.requestHeader.get("x-raw-bin") ?? "");
      context.responseTrailer.set("x-trailer", "t1");
      return { message: request.message, instanceId: "in-test" };
    },
    async *echoStream(request) {
      for (let sequence = 1; sequence <= request.count; sequence++) yield { message: request.message, sequence, instanceId: "in-test" };
    },
  });
  router.rpc(clientStream, async (requests: AsyncIterable<EchoStreamRequest>) => {
    const parts: string[] = [];
    for await (const request of requests) parts.push(request.message);
    return { message: parts.join("+"), sequence: parts.length, instanceId: "in-test" };
  });
  router.rpc(bidiStream, async function* (requests: AsyncIterable<EchoStreamRequest>): AsyncIterable<EchoStreamResponse> {
    let sequence = 0;
    for await (const request of requests) yield create(EchoStreamResponseSchema, { message: request.message.toUpperCase(), sequence: ++sequence, instanceId: "in-test" });
  });
}

async function* items<T>(...values: T[]): AsyncIterable<T> {
  for (const value of values) yield value;
}

for (const unaryOverHttp2 of [false, true]) {
  describe(`grpc-js transport: Connect calls on a grpc-js channel${unaryOverHttp2 ? " (unary calls over its own HTTP/2 connection, as the mesh client makes them)" : ""}`, function () {
    this.timeout(30_000);
    let server: http2.Http2Server;
    let port: number;
    const transports: GrpcJsTransport[] = [];
    const open = (options: Partial<Parameters<typeof createGrpcJsTransport>[0]> = {}) => {
      const transport = createGrpcJsTransport({ unaryOverHttp2, address: "127.0.0.1", port, ...options });
      transports.push(transport);
      return transport;
    };

    before(async () => {
      server = http2.createServer(connectNodeAdapter({ routes }));
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      port = (server.address() as AddressInfo).port;
    });
    after(() => {
      for (const transport of transports) transport.close();
      server.close();
    });

    it("makes a unary call with request headers out, response headers and trailers back, binary ones in base64", async () => {
      const transport = open();
      const raw = Buffer.from([0, 1, 2, 250, 255]);
      const headers = new Headers({ "x-tag": "hello", "x-raw-bin": raw.toString("base64") });
      const response = await transport.unary(EchoService.method.echo, undefined, 2000, headers, { message: "hi" });
      assert.equal(response.message.message, "hi");
      assert.equal(response.header.get("x-echo"), "hello");
      assert.deepEqual(Buffer.from(response.header.get("x-raw-bin")!, "base64"), raw);
      assert.equal(response.trailer.get("x-trailer"), "t1");
      assert.equal((await createClient(EchoService, transport).echo({ message: "via client" })).instanceId, "in-test");
    });

    it("raises a ConnectError with the code, message, metadata and decoded details", async () => {
      const error = await createClient(EchoService, open())
        .echo({ message: "fail" })
        .then(() => assert.fail("no error"), (caught: unknown) => ConnectError.from(caught));
      assert.equal(error.code, Code.FailedPrecondition);
      assert.equal(error.rawMessage, "it failed");
      assert.equal(error.metadata.get("x-why"), "because");
      const details = error.findDetails(StringValueSchema);
      assert.equal(details.length, 1);
      assert.equal(details[0]!.value, "a detail");
    });

    it("sends the timeout as the deadline: DEADLINE_EXCEEDED", async () => {
      const started = performance.now();
      const error = await createClient(EchoService, open())
        .echo({ message: "slow" }, { timeoutMs: 200 })
        .then(() => assert.fail("no error"), (caught: unknown) => ConnectError.from(caught));
      assert.equal(error.code, Code.DeadlineExceeded);
      assert.ok(performance.now() - started < 1500, `took ${performance.now() - started} ms`);
    });

    it("cancels the call when the signal aborts: CANCELED", async () => {
      const controller = new AbortController();
      setTimeout(() => controller.abort(), 100);
      const error = await createClient(EchoService, open())
        .echo({ message: "slow" }, { signal: controller.signal })
        .then(() => assert.fail("no error"), (caught: unknown) => ConnectError.from(caught));
      assert.equal(error.code, Code.Canceled);
    });

    it("streams from the server, collects a client stream, and answers a bidi stream", async () => {
      const transport = open();
      const received: number[] = [];
      for await (const reply of createClient(EchoService, transport).echoStream({ message: "s", count: 5 })) received.push(reply.sequence);
      assert.deepEqual(received, [1, 2, 3, 4, 5]);

      const collected = await transport.stream(clientStream, undefined, 2000, undefined, items({ message: "a" }, { message: "b" }, { message: "c" }));
      const replies = [];
      for await (const reply of collected.message) replies.push(reply);
      assert.deepEqual(replies.map((r) => [r.message, r.sequence]), [["a+b+c", 3]]);

      const bidi = await transport.stream(bidiStream, undefined, 2000, undefined, items({ message: "x" }, { message: "y" }));
      const answers = [];
      for await (const reply of bidi.message) answers.push(reply.message);
      assert.deepEqual(answers, ["X", "Y"]);
    });

    it("runs Connect interceptors around each call, which can set headers", async () => {
      const seen: string[] = [];
      const tagging: Interceptor = (next) => async (request) => {
        seen.push(request.method.name);
        request.header.set("x-tag", "from-interceptor");
        return next(request);
      };
      const transport = open({ interceptors: [tagging] });
      const response = await transport.unary(EchoService.method.echo, undefined, 2000, undefined, { message: "hi" });
      assert.equal(response.header.get("x-echo"), "from-interceptor");
      for await (const reply of createClient(EchoService, transport).echoStream({ message: "s", count: 2 })) assert.equal(reply.message, "s");
      assert.deepEqual(seen, ["Echo", "EchoStream"]);
    });

    it("marks a refused connection as never sent, UNAVAILABLE", async () => {
      const transport = createGrpcJsTransport({ unaryOverHttp2, address: "127.0.0.1", port: await freePort() });
      transports.push(transport);
      const error = await createClient(EchoService, transport)
        .echo({ message: "hi" }, { timeoutMs: 2000 })
        .then(() => assert.fail("no error"), (caught: unknown) => ConnectError.from(caught));
      assert.equal(error.code, Code.Unavailable);
      assert.equal(neverSent(error, false), true);
    });

    it("bounds the wait for a connection with connectTimeoutMs (Consul's ConnectTimeout): UNAVAILABLE, never sent", async () => {
      // A listener that accepts and never speaks: the TLS handshake never completes.
      const sockets: import("node:net").Socket[] = [];
      const silent = (await import("node:net")).createServer((socket) => void sockets.push(socket));
      await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
      try {
        const silentPort = (silent.address() as AddressInfo).port;
        const bounded = createGrpcJsTransport({ unaryOverHttp2, address: "127.0.0.1", port: silentPort, tls: {}, connectTimeoutMs: 200 });
        const unbounded = createGrpcJsTransport({ unaryOverHttp2, address: "127.0.0.1", port: silentPort, tls: {} });
        transports.push(bounded, unbounded);
        const started = performance.now();
        const error = await createClient(EchoService, bounded).echo({ message: "hi" }, { timeoutMs: 2000 }).then(() => assert.fail("no error"), (caught: unknown) => ConnectError.from(caught));
        const took = performance.now() - started;
        assert.equal(error.code, Code.Unavailable);
        assert.match(error.rawMessage, /connect timeout/);
        assert.equal(neverSent(error, false), true);
        assert.ok(took >= 190 && took < 1000, `failed after ${took} ms`);
        const waited = await createClient(EchoService, unbounded).echo({ message: "hi" }, { timeoutMs: 600 }).then(() => assert.fail("no error"), (caught: unknown) => ConnectError.from(caught));
        assert.equal(waited.code, Code.DeadlineExceeded, "without it, the call waits out its deadline");
      } finally {
        for (const socket of sockets) socket.destroy();
        silent.close();
      }
    });

    it("does not mark a call the server received and failed as never sent", async () => {
      const error = await createClient(EchoService, open())
        .echo({ message: "fail" })
        .then(() => assert.fail("no error"), (caught: unknown) => ConnectError.from(caught));
      assert.equal(neverSent(error, false), false);
    });

    it("lets the mesh retry a non-idempotent call that met a refused connection on another instance", async () => {
      const transport = createMeshTransport({
        service: "grpc-js-transport-test",
        resolver: staticResolver([
          { address: "127.0.0.1", port: await freePort() },
          { address: "127.0.0.1", port },
        ]),
        balancer: "round_robin",
        breaker: false,
        metrics: new Registry(),
      });
      try {
        for (let i = 0; i < 6; i++) {
          const response = await transport.unary(unsafeEcho, undefined, 3000, undefined, { message: `call ${i}` });
          assert.equal(response.message.instanceId, "in-test");
        }
      } finally {
        transport.close();
      }
    });

    it("carries a client stream and a bidi stream through the mesh transport", async () => {
      const transport = createMeshTransport({ service: "grpc-js-transport-streams", resolver: staticResolver([{ address: "127.0.0.1", port }]), metrics: new Registry() });
      try {
        const collected = await transport.stream(clientStream, undefined, 2000, undefined, items({ message: "a" }, { message: "b" }));
        const replies = [];
        for await (const reply of collected.message) replies.push(reply.message);
        assert.deepEqual(replies, ["a+b"]);
        const bidi = await transport.stream(bidiStream, undefined, 2000, undefined, items({ message: "p" }, { message: "q" }));
        const answers = [];
        for await (const reply of bidi.message) answers.push(reply.message);
        assert.deepEqual(answers, ["P", "Q"]);
      } finally {
        transport.close();
      }
    });

    it("fails unary calls and streams started after close(), opening no connection", async () => {
      let connections = 0;
      const counted = (socket: unknown) => void (socket && connections++);
      server.on("connection", counted);
      try {
        const transport = createGrpcJsTransport({ unaryOverHttp2, address: "127.0.0.1", port });
        transport.close();
        const client = createClient(EchoService, transport);
        const unary = await client.echo({ message: "late" }, { timeoutMs: 1000 }).then(() => undefined, (caught: unknown) => ConnectError.from(caught));
        assert.equal(unary?.code, Code.Unavailable, String(unary));
        const stream = await (async () => {
          for await (const part of client.echoStream({ message: "late", count: 1 }, { timeoutMs: 1000 })) void part;
        })().then(() => undefined, (caught: unknown) => ConnectError.from(caught));
        assert.equal(stream?.code, Code.Unavailable, String(stream));
        assert.equal(connections, 0);
      } finally {
        server.off("connection", counted);
      }
    });

    it("dials the instance itself, unary calls and streams, when an HTTP proxy is set in the environment", async () => {
      // A proxy that refuses every connection: a call through it could not succeed.
      const saved = process.env.grpc_proxy;
      process.env.grpc_proxy = `http://127.0.0.1:${await freePort()}`;
      try {
        const client = createClient(EchoService, open());
        assert.equal((await client.echo({ message: "direct" }, { timeoutMs: 2000 })).message, "direct");
        const streamed = [];
        for await (const part of client.echoStream({ message: "direct", count: 2 }, { timeoutMs: 2000 })) streamed.push(part.sequence);
        assert.deepEqual(streamed, [1, 2]);
      } finally {
        if (saved === undefined) delete process.env.grpc_proxy;
        else process.env.grpc_proxy = saved;
      }
    });

    it("speaks mutual TLS and picks up client material changed in place at the next connection", async () => {
      const pki = await createTestPki("grpc-js-transport");
      const serverFiles = await pki.issue("server");
      const tlsServer = http2.createSecureServer(
        { cert: readFileSync(serverFiles.certFile), key: readFileSync(serverFiles.keyFile), ca: readFileSync(pki.caFile), requestCert: true, rejectUnauthorized: true },
        connectNodeAdapter({ routes }),
      );
      await new Promise<void>((resolve) => tlsServer.listen(0, "127.0.0.1", resolve));
      try {
        const stranger = await (await createTestPki("grpc-js-stranger")).issue("client");
        const material: http2.SecureClientSessionOptions = { ca: readFileSync(pki.caFile), cert: readFileSync(stranger.certFile), key: readFileSync(stranger.keyFile) };
        const transport = open({ port: (tlsServer.address() as AddressInfo).port, tls: material });
        const client = createClient(EchoService, transport);
        const refused = await client.echo({ message: "hi" }, { timeoutMs: 2000 }).then(() => undefined, (caught: unknown) => ConnectError.from(caught));
        assert.equal(refused?.code, Code.Unavailable, String(refused));
        const trusted = await pki.issue("client");
        Object.assign(material, { cert: readFileSync(trusted.certFile), key: readFileSync(trusted.keyFile) });
        // grpc-js backs off before reconnecting (1 s first): the next connection uses the new pair.
        let reply: string | undefined;
        for (let i = 0; i < 40 && reply === undefined; i++) {
          reply = await client.echo({ message: "hi" }, { timeoutMs: 2000 }).then((r) => r.instanceId, () => sleep(100).then(() => undefined));
        }
        assert.equal(reply, "in-test");
        const streamed = [];
        for await (const part of client.echoStream({ message: "tls", count: 3 })) streamed.push(part.sequence);
        assert.deepEqual(streamed, [1, 2, 3]);
      } finally {
        tlsServer.close();
      }
    });
  });
}
