import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { readFile } from "node:fs/promises";
import http from "node:http";
import http2 from "node:http2";
import https from "node:https";
import net from "node:net";
import tls from "node:tls";
import { setTimeout as sleep } from "node:timers/promises";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { ConnectRouter } from "@connectrpc/connect";
import { EchoRequestSchema, EchoResponseSchema, EchoService } from "../../gen/meshkit/echo/v1/echo_pb.js";
import { startServerHost, type ServerHost, type ServerHostOptions } from "../../src/server/host.js";
import { echoRoutes } from "../../src/reference/services/echo/routes.js";
import { createTestPki, type TestPki } from "../support/certificates.js";
import { grpcFrame } from "../support/raw-grpc.js";
import { killProcess, startServiceProcess, type ServiceProcess } from "../support/service-process.js";

/** The first half of the 24-byte HTTP/2 client preface (RFC 9113, section 3.4). */
const halfPreface = "PRI * HTTP/2.0\r\n";

/** A TCP connection to the server, with errors swallowed: the server is expected to cut it. */
async function openSocket(port: number, firstBytes?: string): Promise<net.Socket> {
  const socket = net.connect({ host: "127.0.0.1", port });
  socket.on("error", () => undefined);
  socket.resume(); // read, so that the server's FIN is seen as 'end' and 'close'
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  if (firstBytes) socket.write(firstBytes);
  return socket;
}

/** Whether `socket` is closed (by the other side) within `ms`. */
function closedWithin(socket: net.Socket, ms: number): Promise<boolean> {
  if (socket.closed) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    socket.once("close", () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/** How long `work` takes to settle, in ms, or undefined if it does not within `limitMs`. */
async function settlesWithin(work: Promise<unknown>, limitMs: number): Promise<number | undefined> {
  const started = performance.now();
  const outcome = await Promise.race([work.then(() => "settled", () => "settled"), sleep(limitMs).then(() => "timeout")]);
  return outcome === "settled" ? performance.now() - started : undefined;
}

describe("drain and slow-loris guard: every accepted connection is tracked, started or not", function () {
  this.timeout(60_000);
  const sockets: net.Socket[] = [];
  const hosts: ServerHost[] = [];
  let pki: TestPki;
  let serverFiles: { certFile: string; keyFile: string };

  const startHost = async (options: Partial<ServerHostOptions> = {}) => {
    const host = await startServerHost({ routes: echoRoutes("drain-1"), ...options });
    hosts.push(host);
    return host;
  };
  const open = async (port: number, firstBytes?: string) => {
    const socket = await openSocket(port, firstBytes);
    sockets.push(socket);
    return socket;
  };

  before(async () => {
    pki = await createTestPki("drain");
    serverFiles = await pki.issue("server");
  });
  afterEach(async () => {
    for (const socket of sockets.splice(0)) socket.destroy();
    // A failed test may leave a host draining forever: bounded here so the suite goes on.
    await Promise.all(hosts.splice(0).map((host) => settlesWithin(host.drain(100), 2000)));
  });

  describe("a service process with DRAIN_TIMEOUT_MS=2000", () => {
    let echo: ServiceProcess | undefined;
    afterEach(() => killProcess(echo));

    it("exits on SIGTERM within the drain timeout despite a silent connection and half an HTTP/2 preface", async () => {
      echo = await startServiceProcess("src/reference/services/echo/main.ts", { SERVICE_NAME: `echo-drain-idle-${randomUUID().slice(0, 8)}`, DRAIN_TIMEOUT_MS: "2000" });
      const silent = await open(echo.port);
      const half = await open(echo.port, halfPreface);
      await sleep(300); // accepted by the process, and the half preface read
      echo.signal("SIGTERM");
      // Margin over the drain timeout: deregistering from Consul and flushing spans to Jaeger.
      const tookMs = await settlesWithin(echo.exited, 2000 + 3000);
      assert.ok(tookMs !== undefined, `still running 5 s after SIGTERM:\n${echo.output.slice(-5).join("\n")}`);
      assert.equal(await echo.exited, 0);
      assert.ok(silent.closed && half.closed);
    });
  });

  it("after its GOAWAY, a draining host refuses new calls: none on the same connection, no new connection; the call in flight completes", async () => {
    const handled: string[] = [];
    const routes = (router: ConnectRouter) =>
      router.service(EchoService, {
        async echo(request) {
          handled.push(request.message);
          if (request.message === "in flight") await sleep(800);
          return { message: request.message };
        },
        async *echoStream() {},
      });
    const host = await startHost({ routes });
    // The client must not learn of the GOAWAY, or it would refuse the new call itself: between
    // it and the host, a proxy that passes everything else and keeps the host's GOAWAY frames.
    const proxy = await goawayKeepingProxy(host.port);
    const session = http2.connect(`http://127.0.0.1:${proxy.port}`);
    session.on("error", () => undefined);
    try {
      const inFlight = unaryOn(session, "in flight");
      await until("the first call's handler to start", () => handled.includes("in flight"));
      const drained = host.drain(5000);
      const goaway = await until("the host's GOAWAY", () => proxy.goaways[0]);
      assert.deepEqual(goaway, { lastStreamId: 1, errorCode: http2.constants.NGHTTP2_NO_ERROR }, "GOAWAY: no error, the last stream it serves the one in flight");
      // A new call on the same connection (stream 3, above the GOAWAY's last stream id).
      const late = unaryOn(session, "after the GOAWAY");
      // And a new connection.
      const refused = await new Promise<string>((resolve) => {
        const socket = net.connect({ host: "127.0.0.1", port: host.port });
        socket.once("connect", () => (socket.destroy(), resolve("accepted")));
        socket.once("error", (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
      });
      assert.equal(refused, "ECONNREFUSED", "a new connection during the drain");
      assert.deepEqual(await inFlight, { grpcStatus: "0", message: "in flight" }, "the call in flight before the GOAWAY");
      const lateAnswer = await late;
      assert.equal(lateAnswer.grpcStatus, undefined, `the call opened after the GOAWAY was answered: ${JSON.stringify(lateAnswer)}`);
      assert.deepEqual(handled, ["in flight"], "a handler ran for a call opened after the GOAWAY");
      assert.ok((await settlesWithin(drained, 3000)) !== undefined, "the drain did not end once the call in flight had");
    } finally {
      session.destroy();
      proxy.close();
    }
  });

  it("closes connections that do not start within handshakeTimeoutMs, and keeps those that did", async () => {
    const host = await startHost({ handshakeTimeoutMs: 400 });
    const silent = await open(host.port);
    const half = await open(host.port, halfPreface);
    const halfHttp1Head = await open(host.port, "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    const session = http2.connect(`http://127.0.0.1:${host.port}`);
    session.on("error", () => undefined);
    const started = new Promise<void>((resolve) => session.once("remoteSettings", () => resolve()));
    await started;
    const closed = await Promise.all([silent, half, halfHttp1Head].map((socket) => closedWithin(socket, 2000)));
    assert.deepEqual(closed, [true, true, true], "silent, half preface, half HTTP/1.1 head: closed by the server");
    assert.equal(session.closed || session.destroyed, false, "a started HTTP/2 connection was closed");
    session.close();
  });

  it("closes a TLS connection that never starts its handshake within handshakeTimeoutMs", async () => {
    const host = await startHost({ handshakeTimeoutMs: 400, tls: serverFiles });
    const silent = await open(host.port);
    assert.equal(await closedWithin(silent, 2000), true);
  });

  it("without TLS, a drain closes an idle HTTP/1.1 keep-alive connection at once", async () => {
    // The cleartext port hands HTTP/1.1 sockets to an http.Server that never listens itself.
    const host = await startHost();
    const agent = new http.Agent({ keepAlive: true });
    try {
      const idle = await idleHttp1Connection(http, host.port, agent);
      const tookMs = await settlesWithin(host.drain(5000), 6000);
      assert.ok(tookMs !== undefined && tookMs < 2000, `drain took ${tookMs ?? "more than 6000"} ms with nothing in flight`);
      assert.equal(await closedWithin(idle, 100), true);
    } finally {
      agent.destroy();
    }
  });

  it("under TLS, a drain closes idle HTTP/1.1 and unstarted connections at once", async () => {
    const host = await startHost({ tls: serverFiles });
    const agent = new https.Agent({ keepAlive: true, ca: await readFile(pki.caFile) });
    try {
      // One HTTP/1.1 request over TLS, its connection then kept alive and idle.
      const idle = await idleHttp1Connection(https, host.port, agent);
      const silent = await open(host.port);
      const tookMs = await settlesWithin(host.drain(5000), 6000);
      assert.ok(tookMs !== undefined && tookMs < 2000, `drain took ${tookMs ?? "more than 6000"} ms with nothing in flight`);
      assert.deepEqual(await Promise.all([idle, silent].map((socket) => closedWithin(socket, 100))), [true, true]);
    } finally {
      agent.destroy();
    }
  });

  it("under TLS, a forced drain ends an HTTP/1.1 request that never finishes", async () => {
    const host = await startHost({ tls: serverFiles });
    const socket = tls.connect({ host: "127.0.0.1", port: host.port, ca: await readFile(pki.caFile), ALPNProtocols: ["http/1.1"] });
    socket.on("error", () => undefined);
    await new Promise((resolve) => socket.once("secureConnect", resolve));
    sockets.push(socket);
    // A request whose head arrived (so it is in flight) and whose body never completes.
    socket.write("POST /meshkit.echo.v1.EchoService/Echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"mess");
    await sleep(300);
    const tookMs = await settlesWithin(host.drain(1000), 1000 + 2000);
    assert.ok(tookMs !== undefined, "the drain did not end 2 s after its timeout");
    assert.ok(tookMs >= 900, `drain ended after ${tookMs} ms, before its timeout: the request in flight was not waited for`);
    assert.equal(await closedWithin(socket, 500), true);
  });
});

/** One HTTP/1.1 request through `agent` (keep-alive), whose connection then stays open and idle. */
async function idleHttp1Connection(client: typeof http | typeof https, port: number, agent: http.Agent): Promise<net.Socket> {
  const socket = await new Promise<net.Socket>((resolve, reject) => {
    client
      .get({ host: "127.0.0.1", port, path: "/metrics", agent }, (response) => {
        assert.equal(response.httpVersion, "1.1");
        const socket = response.socket as net.Socket;
        response.resume();
        response.on("end", () => resolve(socket));
      })
      .on("error", reject);
  });
  socket.on("error", () => undefined);
  return socket;
}

/** Polls `probe` every 10 ms until it returns something other than false or undefined; fails after `ms`. */
async function until<T>(what: string, probe: () => T | false | undefined, ms = 5000): Promise<T> {
  for (const deadline = performance.now() + ms; performance.now() < deadline; await sleep(10)) {
    const value = probe();
    if (value !== undefined && value !== false) return value;
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

/**
 * One gRPC unary Echo on `session`: the grpc-status and message it got, or no status when the
 * stream closed without an answer.
 */
function unaryOn(session: http2.ClientHttp2Session, message: string): Promise<{ grpcStatus?: string; message?: string; rstCode?: number }> {
  return new Promise((resolve) => {
    const stream = session.request({ ":method": "POST", ":path": "/meshkit.echo.v1.EchoService/Echo", "content-type": "application/grpc", te: "trailers" });
    const chunks: Buffer[] = [];
    let grpcStatus: string | undefined;
    stream.on("response", (headers) => (grpcStatus = headers["grpc-status"] as string | undefined));
    stream.on("trailers", (trailers) => (grpcStatus = trailers["grpc-status"] as string | undefined));
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.on("error", () => undefined);
    stream.on("close", () => {
      const body = Buffer.concat(chunks);
      if (grpcStatus === undefined) return resolve({ rstCode: stream.rstCode });
      resolve({ grpcStatus, ...(body.length >= 5 ? { message: fromBinary(EchoResponseSchema, body.subarray(5)).message } : {}) });
    });
    stream.end(grpcFrame(toBinary(EchoRequestSchema, create(EchoRequestSchema, { message }))));
  });
}

/**
 * A loopback TCP proxy to `port` that passes every byte from the client and every HTTP/2 frame
 * from the server but GOAWAY frames, which it keeps (last stream id and error code) in
 * `goaways`: the client goes on as if none had come.
 */
async function goawayKeepingProxy(port: number): Promise<{ port: number; goaways: { lastStreamId: number; errorCode: number }[]; close(): void }> {
  const goaways: { lastStreamId: number; errorCode: number }[] = [];
  const sockets: net.Socket[] = [];
  const server = net.createServer((client) => {
    const upstream = net.connect({ host: "127.0.0.1", port });
    sockets.push(client, upstream);
    for (const socket of [client, upstream]) socket.on("error", () => (client.destroy(), upstream.destroy()));
    client.pipe(upstream);
    let pending = Buffer.alloc(0);
    upstream.on("data", (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      // Frames: a 9-byte header (24-bit length, type, flags, stream id), then the payload.
      while (pending.length >= 9 && pending.length >= 9 + pending.readUIntBE(0, 3)) {
        const size = 9 + pending.readUIntBE(0, 3);
        const frame = pending.subarray(0, size);
        pending = pending.subarray(size);
        if (frame[3] === 0x7) goaways.push({ lastStreamId: frame.readUInt32BE(9) & 0x7fffffff, errorCode: frame.readUInt32BE(13) });
        else client.write(frame);
      }
    });
    upstream.on("end", () => client.end());
    client.on("end", () => upstream.end());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    goaways,
    close: () => {
      for (const socket of sockets) socket.destroy();
      server.close();
    },
  };
}
