import net from "node:net";

/** Where an answer's body goes, a read at a time: `bytes[from, to)` is only valid during the call. */
export interface BodySink {
  /** A new answer starts: forget the last one's bytes. */
  reset(): void;
  append(bytes: Buffer, from: number, to: number): void;
}

/** An answer's status and headers (names in lower case); its body went to the sink. */
export interface AnswerHead {
  statusCode: number;
  headers: Record<string, string>;
}

export interface GetOptions {
  /** Request headers besides Host. */
  headers?: Record<string, string>;
  /** Longest the whole exchange may take, in ms; then the connection is dropped and the get fails. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** The size of the one buffer every read of a connection lands in. */
const readBufferBytes = 64 * 1024;

/**
 * AnswerConnection is one kept-alive HTTP/1.1 connection to a Consul agent that GETs one answer
 * at a time and streams each body into a caller's sink, reading the socket into one buffer it
 * reuses (`net.connect`'s `onread`). A watch of a thousand instances gets a 565 KB answer at
 * every change; through node:http every answer arrives as fresh 64 KB buffers, and in a process
 * with a heap of some size that memory drives V8 into a full collection every few answers:
 * measured on this machine, 4 to 6 ms of CPU per answer through node:http against 0.5 to 0.6 ms
 * this way, and no full collection at all. No HTTP client among the packages does this (undici
 * and node:http both hand each read over as a new buffer), hence this one, which does only what
 * Consul's plain-HTTP API needs: GET, `Content-Length` or chunked bodies, keep-alive, no
 * redirects, no compression (it asks for none), no TLS (an agent behind HTTPS is read through
 * the `consul` package instead).
 */
export class AnswerConnection {
  #socket: net.Socket | undefined;
  #exchange: Exchange | undefined;
  readonly #readBuffer = Buffer.allocUnsafeSlow(readBufferBytes);
  #closed = false;

  constructor(
    private readonly host: string,
    private readonly port: number,
  ) {}

  /**
   * GETs `path` (with its query), its body streamed into `sink`. One get at a time. When a kept-
   * alive connection turns out closed before any byte of the answer came (the agent closed it
   * while idle), the get is sent once more on a new one.
   */
  async get(path: string, sink: BodySink, options: GetOptions = {}): Promise<AnswerHead> {
    const reused = this.#socket !== undefined && !this.#socket.destroyed;
    try {
      return await this.#getOnce(path, sink, options);
    } catch (error) {
      if (!reused || !(error instanceof ConnectionLostEarly) || this.#closed || options.signal?.aborted) throw error;
      return this.#getOnce(path, sink, options);
    }
  }

  #getOnce(path: string, sink: BodySink, options: GetOptions): Promise<AnswerHead> {
    if (this.#closed) return Promise.reject(new Error("the connection to Consul is closed"));
    if (this.#exchange) return Promise.reject(new Error("a get is already in flight on this connection"));
    options.signal?.throwIfAborted();
    const exchange = new Exchange(sink);
    this.#exchange = exchange;
    const socket = this.#connected();
    const headers = Object.entries(options.headers ?? {})
      .map(([name, value]) => `${name}: ${value}\r\n`)
      .join("");
    const host = this.host.includes(":") ? `[${this.host}]` : this.host;
    socket.write(`GET ${path} HTTP/1.1\r\nHost: ${host}:${this.port}\r\n${headers}\r\n`);
    const fail = (error: Error) => {
      // The connection is in an unknown state (a half-read answer): drop it.
      this.#drop();
      exchange.fail(error);
    };
    const timer = options.timeoutMs === undefined ? undefined : setTimeout(() => fail(new Error(`Consul did not answer within ${options.timeoutMs} ms`)), options.timeoutMs);
    const onAbort = () => fail(options.signal!.reason instanceof Error ? options.signal!.reason : new Error("the get was cancelled"));
    options.signal?.addEventListener("abort", onAbort, { once: true });
    return exchange.done.finally(() => {
      clearTimeout(timer);
      options.signal?.removeEventListener("abort", onAbort);
      if (this.#exchange === exchange) this.#exchange = undefined;
      if (exchange.closesConnection) this.#drop();
    });
  }

  close(): void {
    this.#closed = true;
    this.#exchange?.fail(new Error("the connection to Consul was closed"));
    this.#drop();
  }

  #connected(): net.Socket {
    if (this.#socket && !this.#socket.destroyed) return this.#socket;
    const socket = net.connect({
      host: this.host,
      port: this.port,
      noDelay: true,
      onread: {
        buffer: this.#readBuffer,
        callback: (bytes: number, buffer: Uint8Array) => {
          const exchange = this.#exchange;
          if (!exchange) {
            // Bytes nobody asked for: the connection is out of step; drop it.
            this.#drop();
            return false;
          }
          try {
            exchange.read(buffer as Buffer, bytes);
          } catch (error) {
            this.#drop();
            exchange.fail(error instanceof Error ? error : new Error(String(error)));
          }
          return true;
        },
      },
    });
    const lost = (error?: Error) => {
      // A socket already dropped (or replaced) has nothing to say about the exchange in flight.
      if (this.#socket !== socket) return;
      this.#socket = undefined;
      this.#exchange?.connectionEnded(error);
    };
    socket.on("error", lost);
    socket.on("close", () => lost());
    socket.on("end", () => lost());
    this.#socket = socket;
    return socket;
  }

  #drop(): void {
    const socket = this.#socket;
    this.#socket = undefined;
    socket?.destroy();
  }
}

/** The connection ended before any byte of the answer arrived. */
class ConnectionLostEarly extends Error {
  constructor(cause: Error | undefined) {
    super(`Consul closed the connection before answering${cause ? ` (${cause.message})` : ""}`, cause ? { cause } : undefined);
  }
}

/** The framing of a body being read. */
type Framing = { kind: "length"; left: number } | { kind: "chunked"; state: "size" | "data" | "data-end" | "trailers"; left: number; line: string } | { kind: "until-close" };

/** One request's answer, read as its bytes arrive. */
class Exchange {
  readonly #settled = Promise.withResolvers<AnswerHead>();
  readonly done = this.#settled.promise;
  closesConnection = false;
  #head = "";
  #answer: AnswerHead | undefined;
  #framing: Framing | undefined;
  #finished = false;
  #received = false;

  constructor(private readonly sink: BodySink) {
    sink.reset();
    // A failure before anyone awaits is still reported through `done`.
    this.done.catch(() => undefined);
  }

  fail(error: Error): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#settled.reject(error);
  }

  connectionEnded(error: Error | undefined): void {
    if (this.#framing?.kind === "until-close" && !error) return this.#finish();
    if (!this.#received) return this.fail(new ConnectionLostEarly(error));
    this.fail(error ?? new Error("Consul closed the connection before the answer ended"));
  }

  read(buffer: Buffer, bytes: number): void {
    this.#received = true;
    let at = 0;
    if (!this.#answer) {
      // Headers are small: collect them as text up to the blank line.
      const before = this.#head.length;
      this.#head += buffer.toString("latin1", 0, bytes);
      const end = this.#head.indexOf("\r\n\r\n");
      if (end < 0) {
        if (this.#head.length > 64 * 1024) throw new Error("Consul's answer headers exceed 64 KB");
        return;
      }
      this.#answer = parseHead(this.#head.slice(0, end));
      this.#framing = framingOf(this.#answer.headers);
      this.closesConnection = this.#answer.headers.connection?.toLowerCase() === "close" || this.#framing.kind === "until-close";
      at = end + 4 - before;
      if (this.#framing.kind === "length" && this.#framing.left === 0) return this.#finish();
    }
    this.#body(buffer, at, bytes);
  }

  #body(buffer: Buffer, from: number, to: number): void {
    const framing = this.#framing!;
    if (framing.kind === "until-close") {
      this.sink.append(buffer, from, to);
      return;
    }
    if (framing.kind === "length") {
      const take = Math.min(framing.left, to - from);
      this.sink.append(buffer, from, from + take);
      framing.left -= take;
      if (framing.left === 0) this.#finish();
      return;
    }
    let at = from;
    while (at < to && !this.#finished) {
      if (framing.state === "data") {
        const take = Math.min(framing.left, to - at);
        this.sink.append(buffer, at, at + take);
        framing.left -= take;
        at += take;
        if (framing.left === 0) framing.state = "data-end";
        continue;
      }
      // A line: a chunk's size, the CRLF after its data, or a trailer (the last one empty).
      const newline = buffer.indexOf(0x0a, at);
      const stop = newline < 0 || newline >= to ? to : newline + 1;
      framing.line += buffer.toString("latin1", at, stop);
      at = stop;
      if (!framing.line.endsWith("\n")) {
        if (framing.line.length > 4096) throw new Error("a chunk line of Consul's answer exceeds 4 KB");
        continue;
      }
      const line = framing.line.trimEnd();
      framing.line = "";
      if (framing.state === "data-end") {
        if (line !== "") throw new Error("malformed chunked answer from Consul (no CRLF after a chunk)");
        framing.state = "size";
      } else if (framing.state === "size") {
        const size = Number.parseInt(line.split(";")[0]!, 16);
        if (!Number.isFinite(size) || size < 0) throw new Error(`malformed chunk size in Consul's answer: ${JSON.stringify(line.slice(0, 40))}`);
        if (size === 0) framing.state = "trailers";
        else Object.assign(framing, { state: "data", left: size });
      } else if (line === "") {
        this.#finish(); // the blank line after the trailers
      }
    }
    if (this.#finished && at < to) throw new Error("Consul sent bytes after its answer");
  }

  #finish(): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#settled.resolve(this.#answer!);
  }
}

function parseHead(text: string): AnswerHead {
  const [statusLine, ...lines] = text.split("\r\n");
  const status = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine ?? "");
  if (!status) throw new Error(`not an HTTP answer from Consul: ${JSON.stringify((statusLine ?? "").slice(0, 60))}`);
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(":");
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return { statusCode: Number(status[1]), headers };
}

function framingOf(headers: Record<string, string>): Framing {
  if (headers["transfer-encoding"]?.toLowerCase().includes("chunked")) return { kind: "chunked", state: "size", left: 0, line: "" };
  if (headers["content-length"] !== undefined) {
    const length = Number(headers["content-length"]);
    if (!Number.isSafeInteger(length) || length < 0) throw new Error(`malformed Content-Length in Consul's answer: ${headers["content-length"]}`);
    return { kind: "length", left: length };
  }
  return { kind: "until-close" };
}
