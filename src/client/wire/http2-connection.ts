import http2 from "node:http2";

/** Told when the connection a call waits for is up, or has failed. */
export interface ConnectionWaiter {
  connected(session: http2.ClientHttp2Session): void;
  failed(error: Error): void;
}

/** Http2ConnectionOptions configure one `Http2Connection`. */
export interface Http2ConnectionOptions {
  /** Host name or IP address of the server (IPv6 without brackets). */
  address: string;
  port: number;
  /**
   * TLS session options (`ca`, `cert`, `key`, `servername`, `checkServerIdentity`), read afresh at
   * every new connection, so updating the object in place rotates certificates; plaintext when absent.
   */
  tls?: http2.SecureClientSessionOptions | undefined;
  /** A ping this often finds a connection that died silently. Default 10 s. */
  keepaliveMs?: number;
  /** How long a ping may go unanswered before the connection is dropped. Default 10 s. */
  keepaliveTimeoutMs?: number;
  /** A connection with no call for this long is closed (and reopened by the next call). Default 5 min. */
  idleTimeoutMs?: number;
  /** The first pause after a failed connection attempt, during which calls fail at once. Default 1 s. */
  initialBackoffMs?: number;
  /** The longest such pause. Default 5 s. */
  maxBackoffMs?: number;
}

/**
 * Http2Connection is the HTTP/2 connection of the mesh client's unary calls to one instance, with
 * the behaviour of a grpc-js channel of the same settings (wire/grpc-js-wire.ts): it connects on
 * the first call; calls made while it connects wait for it; a failed attempt fails them, and
 * every call for a backoff pause after it (1 s, growing 1.6x up to 5 s, jittered), at once, as a
 * grpc-js channel in TRANSIENT_FAILURE does; a GOAWAY or a dropped connection sends the next
 * call to a new connection while calls in flight finish on the old; a ping every 10 s, also with
 * no call in flight, drops a connection that stopped answering; an idle connection closes after
 * 5 minutes.
 *
 * Written here rather than taken from grpc-js because grpc-js's connection is reached only
 * through its channel's call stack (resolving, retrying, load-balancing and subchannel calls,
 * its filters), which costs a tiny call more CPU than Node's HTTP/2 itself; the mesh client
 * already does what those layers do (picking, retrying, deadlines) in its own way.
 */
export class Http2Connection {
  readonly #authority: string;
  readonly #tls: http2.SecureClientSessionOptions | undefined;
  readonly #keepaliveMs: number;
  readonly #keepaliveTimeoutMs: number;
  readonly #idleTimeoutMs: number;
  readonly #initialBackoffMs: number;
  readonly #maxBackoffMs: number;
  /** The connected session new calls open streams on. */
  #session: http2.ClientHttp2Session | undefined;
  #connecting: http2.ClientHttp2Session | undefined;
  #waiting: ConnectionWaiter[] = [];
  /** After a failed attempt: its error, and until when (performance.now()) calls fail with it. */
  #failure: { error: Error; until: number } | undefined;
  #backoffMs: number;
  #keepalive: NodeJS.Timeout | undefined;
  #inFlight = 0;
  #lastCallAt = 0;
  #closed = false;

  constructor(options: Http2ConnectionOptions) {
    const host = options.address.includes(":") ? `[${options.address}]` : options.address;
    this.#authority = `${options.tls ? "https" : "http"}://${host}:${options.port}`;
    this.#tls = options.tls;
    this.#keepaliveMs = options.keepaliveMs ?? 10_000;
    this.#keepaliveTimeoutMs = options.keepaliveTimeoutMs ?? 10_000;
    this.#idleTimeoutMs = options.idleTimeoutMs ?? 300_000;
    this.#initialBackoffMs = options.initialBackoffMs ?? 1_000;
    this.#maxBackoffMs = options.maxBackoffMs ?? 5_000;
    this.#backoffMs = this.#initialBackoffMs;
  }

  /** Whether a connected session is there for the next call. */
  get ready(): boolean {
    return this.#session !== undefined;
  }

  /**
   * The session a call opens its stream on now, counted in flight until `callEnded`; or
   * undefined, and then `waiter` is told when the connection is up or has failed (failed at once
   * during a backoff pause or after `close`).
   */
  acquire(waiter: ConnectionWaiter): http2.ClientHttp2Session | undefined {
    this.#lastCallAt = performance.now();
    const session = this.#session;
    if (this.#inFlight++ === 0) session?.ref();
    if (session !== undefined) {
      if (!session.closed && !session.destroyed) return session;
      // Closed by a keepalive timeout or an idle close, its 'close' event still to come.
      this.#session = undefined;
    }
    if (this.#closed) {
      waiter.failed(new Error("the connection was closed"));
      return undefined;
    }
    const failure = this.#failure;
    if (failure !== undefined && this.#lastCallAt < failure.until) {
      waiter.failed(failure.error);
      return undefined;
    }
    this.#waiting.push(waiter);
    if (this.#connecting === undefined) this.#connect();
    return undefined;
  }

  /** A waiter gave up (its deadline, its caller's cancel, its connect timeout). */
  stopWaiting(waiter: ConnectionWaiter): void {
    const index = this.#waiting.indexOf(waiter);
    if (index >= 0) this.#waiting.splice(index, 1);
  }

  /** A call that `acquire` counted has ended. */
  callEnded(): void {
    if (--this.#inFlight === 0) this.#session?.unref();
  }

  /** Closes the connection: calls in flight finish, waiting and new calls fail. */
  close(): void {
    this.#closed = true;
    clearInterval(this.#keepalive);
    this.#keepalive = undefined;
    this.#session?.close();
    this.#session = undefined;
    this.#connecting?.destroy();
    this.#connecting = undefined;
    this.#fail(new Error("the connection was closed"));
  }

  #connect(): void {
    const tls = this.#tls;
    // The TLS material is read now, so a rotated certificate applies to this connection.
    const session = http2.connect(this.#authority, tls ? { ...tls } : {});
    this.#connecting = session;
    let lastError: Error | undefined;
    session.on("error", (error: Error) => {
      lastError = error;
    });
    session.once("connect", () => {
      if (this.#connecting !== session) return;
      this.#connecting = undefined;
      this.#session = session;
      // Like a grpc-js channel, a connection with no call in flight does not keep the process
      // alive: a script that made its calls exits without closing its client.
      if (this.#inFlight === 0) session.unref();
      this.#failure = undefined;
      this.#backoffMs = this.#initialBackoffMs;
      this.#keepalive ??= setInterval(() => this.#tick(), this.#keepaliveMs).unref();
      const waiting = this.#waiting;
      this.#waiting = [];
      for (const waiter of waiting) waiter.connected(session);
    });
    session.once("goaway", () => {
      if (this.#session === session) this.#session = undefined;
    });
    session.once("close", () => {
      if (this.#session === session) this.#session = undefined;
      if (this.#connecting !== session) return;
      this.#connecting = undefined;
      const jitter = 1 + (Math.random() - 0.5) * 0.4;
      const error = lastError ?? new Error("the connection closed before it was established");
      this.#failure = { error, until: performance.now() + this.#backoffMs * jitter };
      this.#backoffMs = Math.min(this.#backoffMs * 1.6, this.#maxBackoffMs);
      this.#fail(error);
    });
  }

  #fail(error: Error): void {
    const waiting = this.#waiting;
    this.#waiting = [];
    for (const waiter of waiting) waiter.failed(error);
  }

  /** Every keepalive period: close an idle connection, else ping it. */
  #tick(): void {
    const session = this.#session;
    if (session === undefined) return;
    if (session.closed || session.destroyed) {
      // Dropped (its 'close' event still to come): nothing to ping.
      this.#session = undefined;
      return;
    }
    if (this.#inFlight === 0 && performance.now() - this.#lastCallAt >= this.#idleTimeoutMs) {
      this.#session = undefined;
      session.close();
      return;
    }
    const timeout = setTimeout(() => session.destroy(new Error(`keepalive ping unanswered for ${this.#keepaliveTimeoutMs} ms`)), this.#keepaliveTimeoutMs).unref();
    const sent = session.ping(() => clearTimeout(timeout));
    if (!sent) clearTimeout(timeout);
  }
}
