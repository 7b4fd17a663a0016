import { create, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { anyUnpack } from "@bufbuild/protobuf/wkt";
import { ConnectError, type CallOptions, type Client } from "@connectrpc/connect";
import { createWritableIterable } from "@connectrpc/connect/protocol";
import { ClientResponseResultSchema, type ClientCompatRequest, type ClientResponseResult } from "../../gen/connectrpc/conformance/v1/client_compat_pb.js";
import { StreamType } from "../../gen/connectrpc/conformance/v1/config_pb.js";
import {
  BidiStreamRequestSchema,
  ClientStreamRequestSchema,
  ConformancePayloadSchema,
  ConformanceService,
  IdempotentUnaryRequestSchema,
  ServerStreamRequestSchema,
  UnaryRequestSchema,
  UnimplementedRequestSchema,
  type ConformancePayload,
} from "../../gen/connectrpc/conformance/v1/service_pb.js";
import { sleep, toHeadersInit, toProtoError, toProtoHeaders } from "./conversions.js";

type ConformanceClient = Client<typeof ConformanceService>;

/**
 * invokeCase makes the one call a ClientCompatRequest describes, the way
 * docs/testing_clients.md lays it out per stream type (send with the delays asked for, cancel
 * at the point asked for, read everything), and records what came back: headers, payloads,
 * trailers, the error.
 */
export async function invokeCase(client: ConformanceClient, request: ClientCompatRequest): Promise<ClientResponseResult> {
  const call = new RecordedCall(request);
  try {
    switch (request.method) {
      case "Unary":
        call.payloads.push(payloadOf(await client.unary(onlyMessage(request, UnaryRequestSchema), call.options())));
        break;
      case "IdempotentUnary":
        call.payloads.push(payloadOf(await client.idempotentUnary(onlyMessage(request, IdempotentUnaryRequestSchema), call.options())));
        break;
      case "Unimplemented":
        await client.unimplemented(onlyMessage(request, UnimplementedRequestSchema), call.options());
        break;
      case "ServerStream":
        await call.readAll(client.serverStream(onlyMessage(request, ServerStreamRequestSchema), call.options()));
        break;
      case "ClientStream":
        call.payloads.push(payloadOf(await client.clientStream(call.sendAll(ClientStreamRequestSchema), call.options())));
        break;
      case "BidiStream":
        await bidiStream(client, request, call);
        break;
      default:
        throw new Error(`unknown method ${request.method ?? "(none)"}`);
    }
  } catch (caught) {
    call.failed(caught);
  }
  return call.result();
}

/**
 * A bidi stream. Half duplex: send everything, then read. Full duplex: after each request,
 * read one response, then read the rest after closing the request side.
 */
async function bidiStream(client: ConformanceClient, request: ClientCompatRequest, call: RecordedCall) {
  const requests = createWritableIterable<MessageShape<typeof BidiStreamRequestSchema>>();
  const responses = client.bidiStream(requests, call.options())[Symbol.asyncIterator]();
  const fullDuplex = request.streamType === StreamType.FULL_DUPLEX_BIDI_STREAM;
  const messages = allMessages(request, BidiStreamRequestSchema);
  for (const message of messages) {
    await sleep(request.requestDelayMs);
    try {
      await requests.write(message);
    } catch (caught) {
      call.unsent = messages.length - call.sent;
      throw caught;
    }
    call.sent++;
    if (!fullDuplex) continue;
    if (call.cancelAfterResponses === 0) call.cancel();
    const next = await responses.next();
    if (!next.done) call.received(next.value);
  }
  if (call.cancelBeforeCloseSend) call.cancel();
  requests.close();
  call.scheduleCancelAfterCloseSend();
  if (call.cancelAfterResponses === 0) call.cancel();
  for (;;) {
    const next = await responses.next();
    if (next.done) break;
    call.received(next.value);
  }
}

/** What one call saw, and the cancellation the test asks of it. */
class RecordedCall {
  readonly payloads: ConformancePayload[] = [];
  sent = 0;
  unsent = 0;
  readonly cancelBeforeCloseSend: boolean;
  readonly cancelAfterCloseSendMs: number | undefined;
  readonly cancelAfterResponses: number | undefined;
  #headers: Headers | undefined;
  #trailers: Headers | undefined;
  #error: ConnectError | undefined;
  readonly #abort = new AbortController();

  constructor(readonly request: ClientCompatRequest) {
    const timing = request.cancel?.cancelTiming;
    this.cancelBeforeCloseSend = timing?.case === "beforeCloseSend";
    this.cancelAfterCloseSendMs = timing?.case === "afterCloseSendMs" ? timing.value : undefined;
    this.cancelAfterResponses = timing?.case === "afterNumResponses" ? timing.value : undefined;
    // A unary or server-streaming call is "closed for sending" as soon as it starts.
    if (request.streamType === StreamType.UNARY || request.streamType === StreamType.SERVER_STREAM) this.scheduleCancelAfterCloseSend();
  }

  options(): CallOptions {
    return {
      headers: toHeadersInit(this.request.requestHeaders),
      signal: this.#abort.signal,
      ...(this.request.timeoutMs === undefined ? {} : { timeoutMs: this.request.timeoutMs }),
      onHeader: (headers) => (this.#headers = headers),
      onTrailer: (trailers) => (this.#trailers = trailers),
    };
  }

  cancel(): void {
    this.#abort.abort();
  }

  scheduleCancelAfterCloseSend(): void {
    if (this.cancelAfterCloseSendMs !== undefined) setTimeout(() => this.cancel(), this.cancelAfterCloseSendMs);
  }

  received(response: { payload?: ConformancePayload | undefined }): void {
    this.payloads.push(payloadOf(response));
    if (this.payloads.length === this.cancelAfterResponses) this.cancel();
  }

  async readAll(responses: AsyncIterable<{ payload?: ConformancePayload | undefined }>): Promise<void> {
    if (this.cancelAfterResponses === 0) this.cancel();
    for await (const response of responses) this.received(response);
  }

  /** The request side of a client stream, sent with the test's delays, then closed. */
  async *sendAll<Desc extends DescMessage>(schema: Desc): AsyncGenerator<MessageShape<Desc>> {
    for (const message of allMessages(this.request, schema)) {
      await sleep(this.request.requestDelayMs);
      yield message;
      this.sent++;
    }
    if (this.cancelBeforeCloseSend) this.cancel();
    this.scheduleCancelAfterCloseSend();
  }

  failed(caught: unknown): void {
    this.#error = ConnectError.from(caught);
  }

  result(): ClientResponseResult {
    const error = this.#error;
    // A failed unary call may deliver its metadata only on the error (headers and trailers in
    // one bag); the runner accepts it reported as trailers.
    const trailers = this.#trailers ?? (error && error.metadata.keys().next().done === false ? error.metadata : undefined);
    return create(ClientResponseResultSchema, {
      responseHeaders: this.#headers ? toProtoHeaders(this.#headers) : [],
      responseTrailers: trailers ? toProtoHeaders(trailers) : [],
      payloads: this.payloads,
      numUnsentRequests: this.unsent,
      ...(error ? { error: toProtoError(error) } : {}),
    });
  }
}

function payloadOf(response: { payload?: ConformancePayload | undefined }): ConformancePayload {
  // An empty response message is possible: it counts as an empty payload.
  return response.payload ?? create(ConformancePayloadSchema);
}

function allMessages<Desc extends DescMessage>(request: ClientCompatRequest, schema: Desc): MessageShape<Desc>[] {
  return request.requestMessages.map((any) => {
    const message = anyUnpack(any, schema);
    if (!message) throw new Error(`a request message is ${any.typeUrl}, not ${schema.typeName}`);
    return message;
  });
}

function onlyMessage<Desc extends DescMessage>(request: ClientCompatRequest, schema: Desc): MessageShape<Desc> {
  const messages = allMessages(request, schema);
  if (messages.length !== 1) throw new Error(`a ${schema.typeName} call takes one request message, the test gives ${messages.length}`);
  return messages[0]!;
}
