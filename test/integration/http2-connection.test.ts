import assert from "node:assert/strict";
import http2 from "node:http2";
import net, { type AddressInfo } from "node:net";
import { execFile } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { Http2Connection, type ConnectionWaiter } from "../../src/client/wire/http2-connection.js";
import { freePort } from "../support/free-port.js";

/**
 * The HTTP/2 connection of the mesh client's unary calls (src/client/wire/http2-connection.ts)
 * against real Node HTTP/2 servers: when it connects, how long it backs off, what a GOAWAY, a
 * frozen peer and an idle spell do to it.
 */

const execFileAsync = promisify(execFile);

/** Acquires a session: at once, or when the connection is up; rejects when it failed. */
function session(connection: Http2Connection): Promise<http2.ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const waiter: ConnectionWaiter = { connected: resolve, failed: reject };
    const now = connection.acquire(waiter);
    if (now) resolve(now);
  });
}

/** One request on `on`, answered by the servers below with status 200 and `body`. */
function get(on: http2.ClientHttp2Session, path = "/"): Promise<string> {
  return new Promise((resolve, reject) => {
    const stream = on.request({ ":path": path });
    let body = "";
    stream.setEncoding("utf8");
    stream.on("data", (chunk: string) => (body += chunk));
    stream.on("end", () => resolve(body));
    stream.on("error", reject);
    stream.end();
  });
}

async function listen(server: net.Server, port = 0): Promise<number> {
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  return (server.address() as AddressInfo).port;
}

describe("the mesh client's HTTP/2 connection", function () {
  this.timeout(20_000);
  const closers: (() => void)[] = [];
  afterEach(() => {
    for (const close of closers.splice(0)) close();
  });

  /** A server that answers every request with the session's number (its connection count). */
  async function countingServer(port = 0) {
    const server = http2.createServer();
    let connections = 0;
    const sessions: http2.ServerHttp2Session[] = [];
    server.on("session", (s) => {
      connections++;
      sessions.push(s);
    });
    server.on("stream", (stream, headers) => {
      const reply = () => {
        if (!stream.closed) stream.respond({ ":status": 200 });
        if (!stream.closed) stream.end(String(sessions.indexOf(stream.session as http2.ServerHttp2Session) + 1));
      };
      if (headers[":path"] === "/slow") setTimeout(reply, 300);
      else reply();
    });
    const bound = await listen(server, port);
    closers.push(() => {
      for (const s of sessions) s.destroy();
      server.close();
    });
    return { port: bound, sessions, connections: () => connections };
  }

  it("fails calls at once during the backoff after a refused connection, then connects", async () => {
    const port = await freePort();
    const connection = new Http2Connection({ address: "127.0.0.1", port, initialBackoffMs: 400 });
    closers.push(() => connection.close());
    await assert.rejects(session(connection), /ECONNREFUSED/);
    const server = await countingServer(port);
    const started = performance.now();
    await assert.rejects(session(connection), /ECONNREFUSED/, "within the backoff, the last error at once");
    assert.ok(performance.now() - started < 50);
    assert.equal(server.connections(), 0, "no connection attempt during the backoff");
    await sleep(550); // 400 ms, jittered by at most 20%
    assert.equal(await get(await session(connection)), "1");
    assert.equal(connection.ready, true);
  });

  it("opens a new connection for new calls after a GOAWAY, while a call in flight finishes on the old one", async () => {
    const server = await countingServer();
    const connection = new Http2Connection({ address: "127.0.0.1", port: server.port });
    closers.push(() => connection.close());
    const first = await session(connection);
    const inFlight = get(first, "/slow");
    await sleep(50);
    server.sessions[0]!.goaway(http2.constants.NGHTTP2_NO_ERROR);
    await sleep(50);
    const second = await session(connection);
    assert.notEqual(second, first);
    assert.equal(await get(second), "2");
    assert.equal(await inFlight, "1");
  });

  it("drops a connection whose peer stops answering pings, and connects afresh for the next call", async () => {
    const server = await countingServer();
    // A TCP relay that can freeze: it stops passing bytes either way, as a hung host does.
    let frozen = false;
    const relay = net.createServer((inbound) => {
      const outbound = net.connect(server.port, "127.0.0.1");
      inbound.on("data", (chunk) => void (frozen || outbound.write(chunk)));
      outbound.on("data", (chunk) => void (frozen || inbound.write(chunk)));
      inbound.on("error", () => outbound.destroy());
      outbound.on("error", () => inbound.destroy());
      inbound.on("close", () => outbound.destroy());
      closers.push(() => inbound.destroy());
    });
    const relayPort = await listen(relay);
    closers.push(() => relay.close());
    const connection = new Http2Connection({ address: "127.0.0.1", port: relayPort, keepaliveMs: 200, keepaliveTimeoutMs: 200 });
    closers.push(() => connection.close());
    assert.equal(await get(await session(connection)), "1");
    frozen = true;
    const started = performance.now();
    while (connection.ready && performance.now() - started < 3_000) await sleep(20);
    assert.equal(connection.ready, false, "dropped after an unanswered ping");
    assert.ok(performance.now() - started < 1_000, `took ${Math.round(performance.now() - started)} ms`);
    frozen = false;
    assert.equal(await get(await session(connection)), "2");
  });

  it("closes a connection idle for idleTimeoutMs, and reconnects on the next call", async () => {
    const server = await countingServer();
    const connection = new Http2Connection({ address: "127.0.0.1", port: server.port, keepaliveMs: 100, idleTimeoutMs: 300 });
    closers.push(() => connection.close());
    const first = await session(connection);
    assert.equal(await get(first), "1");
    connection.callEnded();
    await sleep(600);
    assert.equal(connection.ready, false);
    assert.equal(first.closed || first.destroyed, true);
    assert.equal(await get(await session(connection)), "2");
  });

  it("does not keep the process alive with no call in flight, as a grpc-js channel does not", async () => {
    const server = await countingServer();
    // A script that makes one call and exits without closing its connection.
    const script = `
      import { Http2Connection } from ${JSON.stringify(new URL("../../src/client/wire/http2-connection.ts", import.meta.url).href)};
      const connection = new Http2Connection({ address: "127.0.0.1", port: ${server.port} });
      const session = await new Promise((resolve, reject) => { const s = connection.acquire({ connected: resolve, failed: reject }); if (s) resolve(s); });
      const stream = session.request({ ":path": "/" });
      stream.resume();
      await new Promise((resolve) => stream.on("close", resolve));
      connection.callEnded();
      console.log("answered");`;
    const started = performance.now();
    const { stdout } = await execFileAsync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { timeout: 15_000 });
    assert.equal(stdout.trim(), "answered");
    assert.ok(performance.now() - started < 10_000, `exited after ${Math.round(performance.now() - started)} ms`);
    assert.equal(server.connections(), 1);
  });

  it("fails waiting and later calls once closed", async () => {
    const server = await countingServer();
    const connection = new Http2Connection({ address: "127.0.0.1", port: server.port });
    const waiting = session(connection);
    connection.close();
    await assert.rejects(waiting, /closed/);
    await assert.rejects(session(connection), /closed/);
  });
});
