import assert from "node:assert/strict";
import http2 from "node:http2";
import { gzipSync } from "node:zlib";
import type { AddressInfo } from "node:net";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { Registry } from "prom-client";
import { EchoResponseSchema, EchoService } from "../../gen/meshkit/echo/v1/echo_pb.js";
import { createGrpcJsTransport, type GrpcJsTransport } from "../../src/client/wire/grpc-js-wire.js";
import { createMeshTransport, staticResolver } from "../../src/client/index.js";
import { grpcFrame } from "../support/raw-grpc.js";

/**
 * Answers that only a misbehaving or unusual gRPC server gives, scripted on a bare HTTP/2 server
 * (the Connect conformance suite's "gRPC Unexpected Responses" and error cases, each pinned by a
 * focused test of ours): what the grpc-js transport and the mesh client make of each.
 */
type Script = (stream: http2.ServerHttp2Stream) => void;

/** The raw x-tag-bin header fields of each request, as the server received them. */
const binFields = new WeakMap<http2.ServerHttp2Stream, string>();

const unaryReply = () => grpcFrame(toBinary(EchoResponseSchema, create(EchoResponseSchema, { message: "hi" })));
const okHeaders = { ":status": 200, "content-type": "application/grpc" };

/** The scripts, by the request's `x-script` header. */
const scripts: Record<string, Script> = {
  // Trailers-only: one header block with the status and the server's metadata.
  "trailers-only": (stream) => {
    stream.respond({ ...okHeaders, "grpc-status": "5", "grpc-message": "none here", "x-custom-header": "h1" }, { endStream: true });
  },
  // A unary answer with two messages, then OK.
  "two-unary-messages": (stream) => {
    stream.respond(okHeaders, { waitForTrailers: true });
    stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
    stream.write(unaryReply());
    stream.end(unaryReply());
  },
  // A message compressed with an encoding the client never offered.
  "unknown-compression": (stream) => {
    stream.respond({ ...okHeaders, "grpc-encoding": "snappy" }, { waitForTrailers: true });
    stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
    const frame = unaryReply();
    frame.writeUInt8(1, 0); // flagged compressed
    stream.end(frame);
  },
  // A CANCELED status the server sends in its trailers.
  "canceled-status": (stream) => {
    stream.respond(okHeaders, { waitForTrailers: true });
    stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "1", "grpc-message": "the server gave up" }));
    stream.end();
  },
  // A proxy's error page: HTTP 503, HTML, no gRPC status.
  "http-503": (stream) => {
    stream.respond({ ":status": 503, "content-type": "text/html" });
    stream.end("<html>Service Unavailable</html>");
  },
  // The answer gzipped, as the client offered (grpc-accept-encoding).
  gzip: (stream) => {
    stream.respond({ ...okHeaders, "grpc-encoding": "gzip" }, { waitForTrailers: true });
    stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
    const frame = grpcFrame(gzipSync(toBinary(EchoResponseSchema, create(EchoResponseSchema, { message: "unzipped" }))));
    frame.writeUInt8(1, 0);
    stream.end(frame);
  },
  // An answer of 2 KB, above a 1 KB receive limit.
  large: (stream) => {
    stream.respond(okHeaders, { waitForTrailers: true });
    stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
    stream.end(grpcFrame(toBinary(EchoResponseSchema, create(EchoResponseSchema, { message: "x".repeat(2048) }))));
  },
  // Echoes the request's x-tag-bin fields, one trailer each, in the order they came.
  "echo-bin": (stream) => {
    stream.respond(okHeaders, { waitForTrailers: true });
    stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0", "x-seen": String(binFields.get(stream)) }));
    stream.end(unaryReply());
  },
  // How many request bytes arrived, with 1 MiB of padding (many DATA frames each way).
  big: (stream) => {
    let received = 0;
    stream.on("data", (chunk: Buffer) => (received += chunk.byteLength));
    stream.on("end", () => {
      stream.respond(okHeaders, { waitForTrailers: true });
      stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
      stream.end(grpcFrame(toBinary(EchoResponseSchema, create(EchoResponseSchema, { message: String(received), instanceId: "p".repeat(1 << 20) }))));
    });
  },
  // A message cut off: its prefix says 100 bytes, 10 come, then an OK status.
  "cut-message": (stream) => {
    stream.respond(okHeaders, { waitForTrailers: true });
    stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
    stream.end(grpcFrame(Buffer.alloc(10), 100));
  },
  // No status at all: the stream is reset (what an instance dying does to its streams). (Reset
  // after response headers, Node's server sends RST_STREAM with NO_ERROR, not CANCEL.)
  reset: (stream) => {
    setTimeout(() => stream.close(http2.constants.NGHTTP2_CANCEL), 20);
  },
};

for (const unaryOverHttp2 of [false, true]) {
  describe(`grpc-js transport: unusual answers from a server${unaryOverHttp2 ? " (unary calls over its own HTTP/2 connection, as the mesh client makes them)" : ""}`, function () {
    this.timeout(20_000);
    let server: http2.Http2Server;
    let port: number;
    let transport: GrpcJsTransport;

    before(async () => {
      server = http2.createServer();
      server.on("stream", (stream, headers, _flags, rawHeaders: string[]) => {
        stream.on("error", () => undefined);
        // Drain the request; answer per script.
        stream.on("data", () => undefined);
        const name = String(headers["x-script"]);
      binFields.set(stream, JSON.stringify(rawHeaders.filter((_, i) => i % 2 === 1 && rawHeaders[i - 1] === "x-tag-bin")));
        if (name === "reset-at-deadline") {
          // grpc-timeout is "<n>m" from grpc-js here: reset as it runs out, as grpc-go's and
          // connect-go's servers do, racing the client's own deadline timer.
          const ms = Number(String(headers["grpc-timeout"]).replace(/m$/, ""));
          setTimeout(() => stream.close(http2.constants.NGHTTP2_CANCEL), ms);
          return;
        }
        scripts[name]!(stream);
      });
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      port = (server.address() as AddressInfo).port;
      transport = createGrpcJsTransport({ unaryOverHttp2, address: "127.0.0.1", port });
    });
    after(() => {
      transport.close();
      server.close();
    });

    const script = (name: string) => ({ headers: { "x-script": name } });

    it("gives a trailers-only error answer's headers as the response headers (mesh client too)", async () => {
      const mesh = createMeshTransport({ service: "wire-answers", resolver: staticResolver([{ address: "127.0.0.1", port }]), metrics: new Registry() });
      try {
        for (const via of [transport, mesh]) {
          let header: Headers | undefined;
          const failure = await (async () => {
            for await (const reply of createClient(EchoService, via).echoStream({ message: "m", count: 1 }, { ...script("trailers-only"), onHeader: (h) => (header = h) })) void reply;
          })().then(
            () => undefined,
            (caught: unknown) => ConnectError.from(caught),
          );
          assert.equal(failure?.code, Code.NotFound);
          assert.equal(failure?.rawMessage, "none here");
          assert.equal(header?.get("x-custom-header"), "h1");
        }
      } finally {
        mesh.close();
      }
    });

    it("refuses a unary answer's second message with UNIMPLEMENTED at once, not at the deadline", async () => {
      const started = performance.now();
      const failure = await createClient(EchoService, transport)
        .echo({ message: "x" }, { ...script("two-unary-messages"), timeoutMs: 5_000 })
        .then(
          () => undefined,
          (caught: unknown) => ConnectError.from(caught),
        );
      assert.equal(failure?.code, Code.Unimplemented);
      assert.ok(performance.now() - started < 2_000, `took ${Math.round(performance.now() - started)} ms`);
    });

    it("says INTERNAL, with a message, for a message compressed with an encoding it does not know", async () => {
      const failure = await createClient(EchoService, transport)
        .echo({ message: "x" }, { ...script("unknown-compression"), timeoutMs: 5_000 })
        .then(
          () => undefined,
          (caught: unknown) => ConnectError.from(caught),
        );
      assert.equal(failure?.code, Code.Internal);
      assert.match(failure?.rawMessage ?? "", /decompress/);
    });

    it("reads an HTTP error without a gRPC status as grpc-js does (503: UNAVAILABLE), and reads a gzipped answer", async () => {
      const client = createClient(EchoService, transport);
      const failure = await client.echo({ message: "x" }, { ...script("http-503"), timeoutMs: 5_000 }).then(
        () => undefined,
        (caught: unknown) => ConnectError.from(caught),
      );
      assert.equal(failure?.code, Code.Unavailable);
      assert.equal(failure?.rawMessage, "Received HTTP status code 503");
      const reply = await client.echo({ message: "x" }, { ...script("gzip"), timeoutMs: 5_000 });
      assert.equal(reply.message, "unzipped");
    });

    it("carries a 100 KB request and a 1 MiB answer, each in many DATA frames", async () => {
      const reply = await createClient(EchoService, transport).echo({ message: "m".repeat(100_000) }, { ...script("big"), timeoutMs: 10_000 });
      assert.equal(Number(reply.message), 5 + 100_000 + 4, "the request's frame: prefix, then the message's tag, length and 100,000 bytes");
      assert.equal(reply.instanceId.length, 1 << 20);
    });

    it("fails a unary answer cut off inside its message, though its status says OK", async () => {
      const failure = await createClient(EchoService, transport)
        .echo({ message: "x" }, { ...script("cut-message"), timeoutMs: 5_000 })
        .then(
          () => undefined,
          (caught: unknown) => ConnectError.from(caught),
        );
      // grpc-js drops the partial message and finds none; the HTTP/2 wire says what happened.
      if (unaryOverHttp2) {
        assert.equal(failure?.code, Code.Internal);
        assert.match(failure?.rawMessage ?? "", /ended inside a message \(15 bytes/);
      } else assert.equal(failure?.code, Code.Unimplemented);
    });

    it("refuses an answer above readMaxBytes with RESOURCE_EXHAUSTED", async () => {
      const limited = createGrpcJsTransport({ unaryOverHttp2, address: "127.0.0.1", port, readMaxBytes: 1024 });
      try {
        const failure = await createClient(EchoService, limited)
          .echo({ message: "x" }, { ...script("large"), timeoutMs: 5_000 })
          .then(
            () => undefined,
            (caught: unknown) => ConnectError.from(caught),
          );
        assert.equal(failure?.code, Code.ResourceExhausted);
        assert.match(failure?.rawMessage ?? "", /larger than max/);
      } finally {
        limited.close();
      }
    });

    it("sends a binary metadata key's values as separate header fields, as grpc-js does", async () => {
      const headers = new Headers({ "x-script": "echo-bin" });
      headers.append("x-tag-bin", "AQI");
      headers.append("x-tag-bin", "AwQ");
      const reply = await transport.unary(EchoService.method.echo, undefined, 5_000, headers, { message: "x" });
      // Padded (grpc-js) or not (as Connect's Headers hold it): both are base64 the spec accepts.
      const fields = JSON.parse(reply.trailer.get("x-seen") ?? "[]") as string[];
      assert.deepEqual(
        fields.map((field) => [...Buffer.from(field, "base64")]),
        [
          [1, 2],
          [3, 4],
        ],
      );
    });

    it("passes a CANCELED status the server sent to the mesh client's caller as CANCELED; a reset stays UNAVAILABLE", async () => {
      const mesh = createMeshTransport({ service: "wire-answers", resolver: staticResolver([{ address: "127.0.0.1", port }]), metrics: new Registry() });
      try {
        const client = createClient(EchoService, mesh);
        const outcome = (name: string) =>
          client.echo({ message: "x" }, { ...script(name), timeoutMs: 3_000 }).then(
            () => undefined,
            (caught: unknown) => ConnectError.from(caught),
          );
        const canceled = await outcome("canceled-status");
        assert.equal(canceled?.code, Code.Canceled);
        assert.equal(canceled?.rawMessage, "the server gave up");
        const reset = await outcome("reset");
        assert.equal(reset?.code, Code.Unavailable, reset?.message);
        assert.match(reset?.rawMessage ?? "", /broke/, reset?.message);
      } finally {
        mesh.close();
      }
    });

    // The race this guards (the server's reset read before grpc-js's own deadline timer fires) needs
    // a busy event loop: here grpc-js's timer mostly wins, and the conformance suite's Timeouts cases
    // are the ones that caught it. The mapping itself is pinned in test/unit/grpc-js-status.test.ts.
    it("reads a server's reset at the deadline as DEADLINE_EXCEEDED, unary and stream, through the mesh client", async () => {
      const mesh = createMeshTransport({ service: "wire-answers", resolver: staticResolver([{ address: "127.0.0.1", port }]), metrics: new Registry() });
      try {
        const client = createClient(EchoService, mesh);
        for (let round = 0; round < 5; round++) {
          const unary = await client.echo({ message: "x" }, { ...script("reset-at-deadline"), timeoutMs: 200 }).then(
            () => undefined,
            (caught: unknown) => ConnectError.from(caught),
          );
          assert.equal(unary?.code, Code.DeadlineExceeded, `unary: ${unary?.message}`);
          const streamed = await (async () => {
            for await (const reply of client.echoStream({ message: "m", count: 1 }, { ...script("reset-at-deadline"), timeoutMs: 200 })) void reply;
          })().then(
            () => undefined,
            (caught: unknown) => ConnectError.from(caught),
          );
          assert.equal(streamed?.code, Code.DeadlineExceeded, `stream: ${streamed?.message}`);
        }
      } finally {
        mesh.close();
      }
    });
  });
}
