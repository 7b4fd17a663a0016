import type http2 from "node:http2";
import { create, fromBinary, toBinary, type DescMessage, type DescMethod, type DescMethodStreaming, type DescMethodUnary, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createContextValues,
  type ContextValues,
  type Interceptor,
  type StreamRequest,
  type StreamResponse,
  type Transport,
  type UnaryRequest,
  type UnaryResponse,
} from "@connectrpc/connect";
import { Channel, Client, credentials, Metadata, status as grpcStatus, type experimental, type CallOptions, type ChannelOptions, type ClientDuplexStream, type StatusObject } from "@grpc/grpc-js";
import { ChannelReadiness, type ReadinessMark } from "../health/channel-readiness.js";
import { headersToMetadata, MetadataHeaders, metadataToHeaders } from "./metadata.js";
import { statusToConnectError } from "./status.js";
import { NeverSentError } from "./never-sent.js";
import { LiveTlsCredentials } from "./live-tls.js";
import { Http2Connection } from "./http2-connection.js";
import { sendUnaryOverHttp2 } from "./http2-unary.js";
import { unaryAnswer } from "./unary-answer.js";

type HeaderInit = ConstructorParameters<typeof Headers>[0];
type AnyFn = Parameters<Interceptor>[0];

/** GrpcJsTransportOptions configure `createGrpcJsTransport`. */
export interface GrpcJsTransportOptions {
  /** Host name or IP address of the server (IPv6 without brackets). */
  address: string;
  port: number;
  /**
   * TLS material (`ca`, `cert`, `key`, `servername`); plaintext when absent. Read afresh at every
   * new connection, so updating this object in place rotates certificates. Default: plaintext.
   */
  tls?: http2.SecureClientSessionOptions;
  /** Connect interceptors run around every call, outermost first. Default none. */
  interceptors?: Interceptor[];
  /** Largest response message accepted, in bytes. Default 4 MiB. */
  readMaxBytes?: number;
  /** Largest request message sent, in bytes. Default 4 MiB. */
  writeMaxBytes?: number;
  /** Extra grpc-js channel options, applied last. */
  channelOptions?: ChannelOptions;
  /**
   * Longest a unary call waits for a connection, in ms (Consul's `ConnectTimeout`): a call that
   * starts while the channel is not connected, and still has no connection this long after, fails
   * with UNAVAILABLE as never sent (so the mesh retries it elsewhere at once). grpc-js itself has
   * no such bound: a call would wait out its deadline. Default none.
   */
  connectTimeoutMs?: number;
  /**
   * Unary calls go straight over a Node HTTP/2 connection of the transport's own
   * (wire/http2-unary.ts) instead of the grpc-js channel, which then opens only for a stream: the
   * same answers for about half the mesh client's CPU per call (docs/benchmarks.md, bench-calls).
   * `channelOptions` do not apply to that connection. Default false.
   */
  unaryOverHttp2?: boolean;
}

/**
 * GrpcJsTransport is a Connect `Transport` to one server: over one grpc-js channel (one HTTP/2
 * connection), or with `unaryOverHttp2` its unary calls on an HTTP/2 connection of its own and
 * its streams on the grpc-js channel.
 */
export interface GrpcJsTransport extends Transport {
  /** Closes the channel: calls in flight end, new ones fail. */
  close(): void;
}

/**
 * Channel settings equivalent to the connect-node session they replace: a ping every 10 s,
 * also with no call in flight, finds a connection that died silently (a frozen or unplugged
 * host) within ~20 s; an idle channel lets go of its connection after 5 minutes. Reconnection
 * backs off from 1 s up to 5 s (grpc-js's default cap is 120 s): the mesh already steers calls
 * away from a failing instance with its breaker, and an instance Consul passes again should be
 * reachable within seconds, not minutes.
 *
 * Channelz is off: per call, grpc-js otherwise counts and timestamps the call at the channel, the
 * subchannel and the socket, through tracker closures made for each call, for a channelz service
 * that meshkit does not serve; the mesh counts its calls itself (telemetry/). Off, a tiny call
 * over three instances spent 4% less client CPU on average over four A/B runs (-0.6% to 6%,
 * docs/benchmarks.md). `channelOptions` turns it back on.
 *
 * No HTTP proxy: grpc-js would send every channel through `grpc_proxy` / `https_proxy` /
 * `http_proxy` when one is set, while the transport's own unary connection (http2-connection.ts)
 * dials the instance; the mesh reaches the instance at the address its resolver gave, as a
 * sidecar does, for streams too.
 */
const defaultChannelOptions: ChannelOptions = {
  "grpc.enable_channelz": 0,
  "grpc.enable_http_proxy": 0,
  "grpc.keepalive_time_ms": 10_000,
  "grpc.keepalive_timeout_ms": 10_000,
  "grpc.keepalive_permit_without_calls": 1,
  "grpc.client_idle_timeout_ms": 300_000,
  "grpc.initial_reconnect_backoff_ms": 1_000,
  "grpc.max_reconnect_backoff_ms": 5_000,
};

/** What grpc-js needs to call one method, built once per method. */
interface MethodWire {
  path: string;
  serialize: (message: unknown) => Buffer;
  deserialize: (bytes: Buffer) => unknown;
}
const wires = new WeakMap<DescMethod, MethodWire>();
function wireOf(method: DescMethod): MethodWire {
  let wire = wires.get(method);
  if (!wire) {
    const input = method.input;
    const output = method.output;
    wire = {
      path: `/${method.parent.typeName}/${method.name}`,
      // protobuf-es bytes, viewed (not copied) as the Buffer grpc-js frames.
      serialize: (message) => {
        const bytes = toBinary(input, message as MessageShape<typeof input>);
        return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      },
      deserialize: (bytes) => fromBinary(output, bytes),
    };
    wires.set(method, wire);
  }
  return wire;
}

/** The signal of a request nobody can cancel (Connect's requests always carry one). */
const neverAborted = new AbortController().signal;

const canceled = (signal: AbortSignal) => ConnectError.from(signal.reason, Code.Canceled);

/** A call made after `close()`: never sent, so the mesh may send it to another instance. */
const closedError = () => new ConnectError("the transport to this instance was closed", Code.Unavailable, undefined, undefined, new NeverSentError("the transport was closed"));

/**
 * UnaryCall is one unary call's listener on a grpc-js call, and its abort handler: methods on a
 * class rather than closures made per call, which this hot path would pay for.
 */
class UnaryCall<I extends DescMessage, O extends DescMessage> {
  readonly response = Promise.withResolvers<UnaryResponse<I, O>>();
  readonly #mark: ReadinessMark;
  #connectTimer: NodeJS.Timeout | undefined;
  #header: Metadata | undefined;
  #reply: MessageShape<O> | undefined;
  #readError: StatusObject | undefined;

  constructor(
    private readonly call: experimental.CallStream,
    private readonly method: DescMethodUnary<I, O>,
    private readonly wire: MethodWire,
    private readonly signal: AbortSignal,
    private readonly readiness: ChannelReadiness,
    /** When the call must end, epoch ms (Infinity: never). */
    private readonly deadline: number,
  ) {
    this.#mark = readiness.callStarted();
    if (signal !== neverAborted) signal.addEventListener("abort", this, { once: true });
  }

  /** The signal aborted. */
  handleEvent(): void {
    this.call.cancelWithStatus(grpcStatus.CANCELLED, "Cancelled on client");
  }

  /** Fails the call as never sent if the channel has not connected within `ms` (see `connectTimeoutMs`). */
  boundConnect(ms: number): void {
    this.#connectTimer = setTimeout(() => {
      if (this.readiness.neverSent(this.#mark)) this.call.cancelWithStatus(grpcStatus.UNAVAILABLE, `no connection within the ${ms} ms connect timeout`);
    }, ms);
  }

  onReceiveMetadata(metadata: Metadata): void {
    this.#header = metadata;
  }

  onReceiveMessage(bytes: Buffer): void {
    if (this.#reply !== undefined) this.#readError = { code: grpcStatus.UNIMPLEMENTED, details: "Too many responses received", metadata: new Metadata() };
    else {
      try {
        this.#reply = this.wire.deserialize(bytes) as MessageShape<O>;
      } catch (error) {
        this.#readError = { code: grpcStatus.INTERNAL, details: `Response message parsing error: ${String(error)}`, metadata: new Metadata() };
      }
    }
    if (this.#readError) this.call.cancelWithStatus(this.#readError.code, this.#readError.details);
    // Read on: grpc-js holds the status back while a message waits unread, so a second message
    // (which must be refused, as grpc-js's own unary client does) would leave the call waiting
    // out its deadline instead.
    else this.call.startRead();
  }

  onReceiveStatus(status: StatusObject): void {
    const { signal, response } = this;
    if (this.#connectTimer !== undefined) clearTimeout(this.#connectTimer);
    if (signal !== neverAborted) signal.removeEventListener("abort", this);
    if (status.code === grpcStatus.OK && !signal.aborted && !this.#readError && this.#reply !== undefined) {
      response.resolve(unaryAnswer(this.method, this.#reply, this.#header, status.metadata, metadataHeaders));
      return;
    }
    const header = this.#header ? new MetadataHeaders(this.#header) : new Headers();
    if (signal.aborted) response.reject(canceled(signal));
    else if (this.#readError) response.reject(statusToConnectError(this.#readError, header, false));
    else if (status.code !== grpcStatus.OK) response.reject(statusToConnectError(status, header, this.readiness.neverSent(this.#mark), this.deadline));
    else response.reject(new ConnectError("no response message", Code.Unimplemented, header));
  }
}

const metadataHeaders = (metadata: Metadata) => new MetadataHeaders(metadata);

/**
 * createGrpcJsTransport returns a Connect `Transport` whose calls run on a `@grpc/grpc-js`
 * channel, so generated Connect clients (`createClient(Service, transport)`) pay grpc-js's cost
 * per call rather than connect-node's (measured here at about a third of it). All four method
 * kinds; protobuf-es `toBinary`/`fromBinary` serialize; the call's timeout becomes grpc-js's
 * deadline (sent as `grpc-timeout`); an aborted signal cancels the call; request headers go out
 * as metadata and response headers and trailers come back as `Headers` (binary `-bin` values in
 * base64, as Connect encodes them); a failure is a `ConnectError` with the gRPC code, message,
 * headers and trailers as metadata, and the details of `grpc-status-details-bin`.
 *
 * With `unaryOverHttp2` (the mesh endpoints' setting) unary calls skip grpc-js for Node's HTTP/2
 * stream (http2-unary.ts), with the same answers.
 *
 * A failure that proves the request never left (no connection for it; on the unary connection,
 * also a stream the server refused unprocessed) carries a `NeverSentError` cause, which the
 * mesh's retry policy reads (see channel-readiness.ts).
 *
 * ```ts
 * const transport = createGrpcJsTransport({ address: "127.0.0.1", port: 50051 });
 * const reply = await createClient(EchoService, transport).echo({ message: "hi" }, { timeoutMs: 1000 });
 * transport.close();
 * ```
 */
export function createGrpcJsTransport(options: GrpcJsTransportOptions): GrpcJsTransport {
  const host = options.address.includes(":") ? `[${options.address}]` : options.address;
  const target = `${options.address.includes(":") ? "ipv6" : /^[\d.]+$/.test(options.address) ? "ipv4" : "dns"}:${host}:${options.port}`;
  const baseUrl = `${options.tls ? "https" : "http"}://${host}:${options.port}`;
  const readMaxBytes = options.readMaxBytes ?? 4 * 1024 * 1024;
  const writeMaxBytes = options.writeMaxBytes ?? 4 * 1024 * 1024;
  /** The grpc-js channel, made at its first use (with `unaryOverHttp2`, the first stream). */
  let grpcJs: { channel: Channel; client: Client; readiness: ChannelReadiness } | undefined;
  const grpcJsChannel = () => {
    if (grpcJs) return grpcJs;
    const channel = new Channel(target, options.tls ? new LiveTlsCredentials(options.tls, options.address) : credentials.createInsecure(), {
      ...defaultChannelOptions,
      "grpc.max_receive_message_length": readMaxBytes,
      "grpc.max_send_message_length": writeMaxBytes,
      ...options.channelOptions,
    });
    // Streams go through grpc-js's Client (its Node streams, back-pressure); unary calls go straight
    // to the channel (below). Both share the one channel.
    const client = new Client(target, credentials.createInsecure(), { channelOverride: channel });
    return (grpcJs = { channel, client, readiness: new ChannelReadiness(channel) });
  };
  let closed = false;
  const http2Connection = options.unaryOverHttp2 ? new Http2Connection({ address: options.address, port: options.port, tls: options.tls }) : undefined;
  const interceptors = options.interceptors ?? [];
  const connectTimeoutMs = options.connectTimeoutMs;

  /**
   * A unary call straight on the channel (`Channel.createCall`, the public hook grpc-js's own
   * Client is built on), in the order grpc-js's Client drives it: start, read, send, half-close.
   * This skips what the Client adds per call and Connect does not need: an EventEmitter, a
   * captured caller stack, the interceptor chain.
   */
  function sendUnary<I extends DescMessage, O extends DescMessage>(
    method: DescMethodUnary<I, O>,
    signal: AbortSignal,
    timeoutMs: number | undefined,
    headers: Headers | undefined,
    message: MessageShape<I>,
  ): Promise<UnaryResponse<I, O>> {
    if (signal.aborted) return Promise.reject(canceled(signal));
    if (closed) return Promise.reject(closedError());
    const wire = wireOf(method);
    let request: Buffer;
    try {
      request = wire.serialize(message);
    } catch (error) {
      return Promise.reject(new ConnectError(`request message serialization failure: ${String(error)}`, Code.Internal));
    }
    if (http2Connection) {
      const spec = {
        method,
        path: wire.path,
        deserialize: wire.deserialize as (bytes: Buffer) => MessageShape<O>,
        request,
        signal: signal === neverAborted ? undefined : signal,
        headers,
        timeoutMs,
        readMaxBytes,
        writeMaxBytes,
        connectTimeoutMs,
      };
      return sendUnaryOverHttp2(http2Connection, spec);
    }
    const { channel, readiness } = grpcJsChannel();
    const deadline = timeoutMs === undefined ? Infinity : Date.now() + timeoutMs;
    const call = channel.createCall(wire.path, deadline, undefined, null, undefined);
    const unary = new UnaryCall<I, O>(call, method, wire, signal, readiness, deadline);
    if (connectTimeoutMs !== undefined && !readiness.ready) unary.boundConnect(connectTimeoutMs);
    call.start(headers ? headersToMetadata(headers) : new Metadata(), unary);
    call.startRead();
    call.sendMessageWithContext({}, request);
    call.halfClose();
    return unary.response.promise;
  }

  /**
   * Every stream kind runs as a grpc-js bidirectional call: on the wire the four kinds differ
   * only in how many messages each side sends, which the server's method decides.
   */
  async function openStream<I extends DescMessage, O extends DescMessage>(
    method: DescMethodStreaming<I, O>,
    signal: AbortSignal,
    timeoutMs: number | undefined,
    headers: Headers,
    input: AsyncIterable<MessageShape<I>>,
  ): Promise<StreamResponse<I, O>> {
    if (signal.aborted) throw canceled(signal);
    if (closed) throw closedError();
    const wire = wireOf(method);
    const { client, readiness } = grpcJsChannel();
    const mark = readiness.callStarted();
    // One deadline for grpc-js's timer and for reading a stream reset as the deadline passing.
    const deadline = timeoutMs === undefined ? undefined : Date.now() + timeoutMs;
    const callOptions: CallOptions = deadline === undefined ? {} : { deadline };
    const call: ClientDuplexStream<unknown, unknown> = client.makeBidiStreamRequest(wire.path, wire.serialize, wire.deserialize, headersToMetadata(headers), callOptions);
    // The status carries every failure; without a listener an `error` event would throw.
    call.on("error", () => undefined);
    const onAbort = () => call.cancel();
    if (signal !== neverAborted) signal.addEventListener("abort", onAbort, { once: true });
    const trailer = new Headers();
    const ended = new Promise<StatusObject>((resolve) =>
      call.on("status", (status: StatusObject) => {
        if (signal !== neverAborted) signal.removeEventListener("abort", onAbort);
        metadataToHeaders(status.metadata, trailer);
        resolve(status);
      }),
    );
    const failureOf = (status: StatusObject, header: Headers | undefined): ConnectError | undefined => {
      if (signal.aborted) return canceled(signal);
      return status.code === grpcStatus.OK ? undefined : statusToConnectError(status, header, readiness.neverSent(mark), deadline);
    };
    void sendAll(call, input, ended);

    // The stream is open when the response headers arrive; a trailers-only answer ends it at once.
    const opened = await Promise.race([new Promise<Headers>((resolve) => call.once("metadata", (metadata) => resolve(metadataToHeaders(metadata)))), ended]);
    let header: Headers;
    let trailersOnly: ConnectError | undefined;
    if (opened instanceof Headers) header = opened;
    else {
      const failure = failureOf(opened, undefined);
      // A trailers-only answer from the server (it sent metadata): its one header block is the
      // response's headers and its trailers, and the error comes when the messages are read, as
      // connect's gRPC transport gives it. A failure with nothing from the server (no connection,
      // cancelled) fails the opening itself.
      if (failure && Object.keys(opened.metadata.getMap()).length === 0) throw failure;
      header = metadataToHeaders(opened.metadata);
      trailersOnly = failure;
    }
    async function* receive(): AsyncGenerator<MessageShape<O>> {
      let complete = false;
      try {
        if (trailersOnly) {
          complete = true;
          throw trailersOnly;
        }
        try {
          for await (const message of call.iterator({ destroyOnReturn: false })) yield message as MessageShape<O>;
        } catch {
          // The status below says what went wrong (Node's iterator yields what is buffered first).
        }
        complete = true;
        const failure = failureOf(await ended, header);
        if (failure) throw failure;
      } finally {
        // The caller stopped reading early: end the call rather than leave it open.
        if (!complete) call.cancel();
      }
    }
    return { stream: true, service: method.parent, method, header, message: receive(), trailer };
  }

  // Connect's requests have no field for the timeout: each intercepted call gets its own chain,
  // whose innermost step closes over it (as Connect's own transports apply interceptors per call).
  const intercepted = (timeoutMs: number | undefined): AnyFn =>
    interceptors.reduceRight<AnyFn>(
      (next, interceptor) => interceptor(next),
      (request) =>
        request.stream
          ? openStream(request.method as DescMethodStreaming, request.signal, timeoutMs, request.header, request.message)
          : sendUnary(request.method as DescMethodUnary, request.signal, timeoutMs, request.header, request.message),
    );

  // What an intercepted request carries besides its kind and message, as Connect's transports fill it.
  const requestFields = (method: DescMethodUnary | DescMethodStreaming, header: Headers, signal: AbortSignal | undefined, contextValues: ContextValues | undefined) => ({
    service: method.parent,
    requestMethod: "POST",
    url: `${baseUrl}/${method.parent.typeName}/${method.name}`,
    header,
    contextValues: contextValues ?? createContextValues(),
    signal: signal ?? neverAborted,
  });

  return {
    unary<I extends DescMessage, O extends DescMessage>(
      method: DescMethodUnary<I, O>,
      signal: AbortSignal | undefined,
      timeoutMs: number | undefined,
      header: HeaderInit | undefined,
      input: MessageInitShape<I>,
      contextValues?: ContextValues,
    ): Promise<UnaryResponse<I, O>> {
      const message = create(method.input, input);
      // No headers to send (the mesh passes none when there are none): no Headers to build.
      if (interceptors.length === 0) return sendUnary(method, signal ?? neverAborted, timeoutMs, header === undefined || header instanceof Headers ? header : new Headers(header), message);
      const headers = header instanceof Headers ? header : new Headers(header);
      const request: UnaryRequest<I, O> = { ...requestFields(method, headers, signal, contextValues), stream: false, method, message };
      return intercepted(timeoutMs)(request) as Promise<UnaryResponse<I, O>>;
    },

    stream<I extends DescMessage, O extends DescMessage>(
      method: DescMethodStreaming<I, O>,
      signal: AbortSignal | undefined,
      timeoutMs: number | undefined,
      header: HeaderInit | undefined,
      input: AsyncIterable<MessageInitShape<I>>,
      contextValues?: ContextValues,
    ): Promise<StreamResponse<I, O>> {
      const messages = createAll(method.input, input);
      const headers = header instanceof Headers ? header : new Headers(header);
      if (interceptors.length === 0) return openStream(method, signal ?? neverAborted, timeoutMs, headers, messages);
      const request: StreamRequest<I, O> = { ...requestFields(method, headers, signal, contextValues), stream: true, method, message: messages };
      return intercepted(timeoutMs)(request) as Promise<StreamResponse<I, O>>;
    },

    close() {
      closed = true;
      http2Connection?.close();
      grpcJs?.channel.close(); // the Client's channel too: it is the same one
    },
  };
}

/** Writes every request message, honouring back-pressure, then half-closes; stops when the call ends. */
async function sendAll(call: ClientDuplexStream<unknown, unknown>, input: AsyncIterable<unknown>, ended: Promise<StatusObject>): Promise<void> {
  let done = false;
  void ended.then(() => (done = true));
  try {
    for await (const message of input) {
      if (done) return;
      if (!call.write(message)) await Promise.race([new Promise((resolve) => call.once("drain", resolve)), ended]);
    }
    if (!done) call.end();
  } catch {
    // The request stream failed: the call cannot complete, and its status will say CANCELLED.
    call.cancel();
  }
}

async function* createAll<I extends DescMessage>(schema: I, input: AsyncIterable<MessageInitShape<I>>): AsyncIterable<MessageShape<I>> {
  for await (const message of input) yield create(schema, message);
}
