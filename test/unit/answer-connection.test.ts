import assert from "node:assert/strict";
import http from "node:http";
import net from "node:net";
import type { AddressInfo } from "node:net";
import { AnswerConnection, type BodySink } from "../../src/platform/answer-connection.js";

/** A sink that keeps what it is given, as AnswerBuffers does. */
class Collected implements BodySink {
  bytes = Buffer.alloc(0);
  resets = 0;
  reset() {
    this.bytes = Buffer.alloc(0);
    this.resets++;
  }
  append(bytes: Buffer, from: number, to: number) {
    this.bytes = Buffer.concat([this.bytes, bytes.subarray(from, to)]);
  }
}

async function listen(server: net.Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return (server.address() as AddressInfo).port;
}

/** A raw TCP server that answers each request (one per "\r\n\r\n") with `answer(n)`, written in pieces of `piece` bytes. */
async function rawServer(answer: (n: number) => Buffer | "hang" | "close", piece = 7): Promise<{ port: number; connections: () => number; close: () => void }> {
  let connections = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    connections++;
    sockets.add(socket);
    let pending = "";
    let served = 0;
    socket.on("data", async (data) => {
      pending += data.toString("latin1");
      while (pending.includes("\r\n\r\n")) {
        pending = pending.slice(pending.indexOf("\r\n\r\n") + 4);
        const reply = answer(served++);
        if (reply === "hang") return;
        if (reply === "close") return void socket.destroy();
        for (let at = 0; at < reply.length; at += piece) {
          socket.write(reply.subarray(at, at + piece));
          await new Promise((resolve) => setImmediate(resolve));
        }
      }
    });
  });
  const port = await listen(server);
  return {
    port,
    connections: () => connections,
    close: () => {
      for (const socket of sockets) socket.destroy();
      server.close();
    },
  };
}

const chunked = (parts: string[], trailers = "") => Buffer.from(`HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Consul-Index: 42\r\n\r\n${parts.map((part) => `${Buffer.byteLength(part).toString(16)};ext=1\r\n${part}\r\n`).join("")}0\r\n${trailers}\r\n`);

describe("AnswerConnection: Consul's answers read into a reused buffer", () => {
  it("reads Content-Length and chunked answers from node:http, on one kept-alive connection, with the request's headers", async () => {
    const seen: { url: string | undefined; token: string | undefined; socket: unknown }[] = [];
    const big = JSON.stringify(Array.from({ length: 5000 }, (_, n) => ({ n, text: "é".repeat(n % 7) })));
    const server = http.createServer((request, response) => {
      seen.push({ url: request.url, token: request.headers["x-consul-token"] as string | undefined, socket: request.socket });
      response.setHeader("X-Consul-Index", String(seen.length));
      if (request.url?.includes("chunked")) {
        response.write(big.slice(0, 1000));
        response.end(big.slice(1000));
      } else {
        response.end(big);
      }
    });
    const port = await listen(server);
    const connection = new AnswerConnection("127.0.0.1", port);
    try {
      const sink = new Collected();
      const first = await connection.get("/v1/a?index=1", sink, { headers: { "X-Consul-Token": "secret" } });
      assert.equal(first.statusCode, 200);
      assert.equal(first.headers["x-consul-index"], "1");
      assert.equal(sink.bytes.toString("utf8"), big);
      const second = await connection.get("/v1/chunked", sink);
      assert.equal(second.headers["transfer-encoding"], "chunked");
      assert.equal(sink.bytes.toString("utf8"), big);
      assert.equal(sink.resets, 2);
      assert.deepEqual(seen.map((request) => [request.url, request.token]), [["/v1/a?index=1", "secret"], ["/v1/chunked", undefined]]);
      assert.equal(seen[0]!.socket, seen[1]!.socket, "one connection for both");
    } finally {
      connection.close();
      server.close();
    }
  });

  it("follows answers cut anywhere: chunk sizes with extensions, data and CRLFs split across reads, trailers", async () => {
    const server = await rawServer(() => chunked(["[{\"a\":1}", ",", "{\"b\":2}]"], "X-Trailer: yes\r\n"), 3);
    const connection = new AnswerConnection("127.0.0.1", server.port);
    try {
      const sink = new Collected();
      for (let round = 0; round < 3; round++) {
        const head = await connection.get("/v1/x", sink);
        assert.equal(head.headers["x-consul-index"], "42");
        assert.equal(sink.bytes.toString(), "[{\"a\":1},{\"b\":2}]");
      }
      assert.equal(server.connections(), 1);
    } finally {
      connection.close();
      server.close();
    }
  });

  it("asks again on a new connection when a kept-alive one was closed before any byte of the answer", async () => {
    const server = await rawServer((n) => (n === 1 ? "close" : Buffer.from("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n[]")));
    const connection = new AnswerConnection("127.0.0.1", server.port);
    try {
      const sink = new Collected();
      await connection.get("/v1/x", sink);
      await connection.get("/v1/x", sink); // the server drops this one's connection
      assert.equal(sink.bytes.toString(), "[]");
      assert.equal(server.connections(), 2);
    } finally {
      connection.close();
      server.close();
    }
  });

  it("fails, and drops the connection, on a cut answer, a timeout, an abort or bytes that are not HTTP", async () => {
    const cut = await rawServer(() => Buffer.from("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n[1,2"));
    const connection = new AnswerConnection("127.0.0.1", cut.port);
    try {
      await assert.rejects(connection.get("/v1/x", new Collected(), { timeoutMs: 200 }), /within 200 ms/);
    } finally {
      connection.close();
      cut.close();
    }

    const hang = await rawServer(() => "hang");
    const aborting = new AnswerConnection("127.0.0.1", hang.port);
    try {
      const controller = new AbortController();
      const pending = aborting.get("/v1/x", new Collected(), { signal: controller.signal });
      setTimeout(() => controller.abort(new Error("watch closed")), 50);
      await assert.rejects(pending, /watch closed/);
      // The connection was dropped: the next get opens another.
      const second = aborting.get("/v1/x", new Collected(), { timeoutMs: 100 });
      await assert.rejects(second, /within 100 ms/);
      assert.equal(hang.connections(), 2);
    } finally {
      aborting.close();
      hang.close();
    }

    const garbage = await rawServer(() => Buffer.from("SSH-2.0-OpenSSH\r\n\r\n"));
    const confused = new AnswerConnection("127.0.0.1", garbage.port);
    try {
      await assert.rejects(confused.get("/v1/x", new Collected()), /not an HTTP answer/);
    } finally {
      confused.close();
      garbage.close();
    }

    const badChunk = await rawServer(() => Buffer.from("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"));
    const chunkless = new AnswerConnection("127.0.0.1", badChunk.port);
    try {
      await assert.rejects(chunkless.get("/v1/x", new Collected()), /malformed chunk size/);
    } finally {
      chunkless.close();
      badChunk.close();
    }
  });

  it("refuses a second get while one is in flight, and any get once closed", async () => {
    const hang = await rawServer(() => "hang");
    const connection = new AnswerConnection("127.0.0.1", hang.port);
    const first = connection.get("/v1/x", new Collected());
    await assert.rejects(connection.get("/v1/y", new Collected()), /already in flight/);
    connection.close();
    await assert.rejects(first, /closed/);
    await assert.rejects(connection.get("/v1/x", new Collected()), /closed/);
    hang.close();
  });
});
