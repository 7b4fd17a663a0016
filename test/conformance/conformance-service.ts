import { create, createRegistry, type MessageInitShape } from "@bufbuild/protobuf";
import { anyPack, type Any } from "@bufbuild/protobuf/wkt";
import type { ConnectRouter, HandlerContext } from "@connectrpc/connect";
import {
  BidiStreamRequestSchema,
  ClientStreamRequestSchema,
  ConformancePayloadSchema,
  ConformancePayload_RequestInfoSchema,
  ConformanceService,
  IdempotentUnaryRequestSchema,
  ServerStreamRequestSchema,
  UnaryRequestSchema,
  type ConformancePayload_RequestInfo,
  type StreamResponseDefinition,
  type UnaryResponseDefinition,
} from "../../gen/connectrpc/conformance/v1/service_pb.js";
import { appendProtoHeaders, sleep, toConnectError, toProtoHeaders } from "./conversions.js";

/**
 * The JSON codec writes the echoed requests (google.protobuf.Any) with their type URL and
 * fields, which it can only do for types it knows.
 */
const echoedTypes = createRegistry(UnaryRequestSchema, IdempotentUnaryRequestSchema, ClientStreamRequestSchema, ServerStreamRequestSchema, BidiStreamRequestSchema, ConformancePayload_RequestInfoSchema);

type Payload = MessageInitShape<typeof ConformancePayloadSchema>;

/**
 * conformanceRoutes implements connectrpc.conformance.v1.ConformanceService as the suite's
 * reference client expects of a server (docs/testing_servers.md): every response echoes what
 * the server saw (headers, timeout, request messages); a test's response definition says what
 * to answer, with which headers and trailers, after which delay, or which error to raise (its
 * details then carry the echo). `Unimplemented` is left out on purpose: the router answers
 * UNIMPLEMENTED for it.
 */
export function conformanceRoutes(router: ConnectRouter): void {
  router.service(
    ConformanceService,
    {
      unary: (request, context) => answerOnce(request.responseDefinition, [anyPack(UnaryRequestSchema, request)], context),
      idempotentUnary: (request, context) => answerOnce(request.responseDefinition, [anyPack(IdempotentUnaryRequestSchema, request)], context),

      async clientStream(requests, context) {
        let definition: UnaryResponseDefinition | undefined;
        const received: Any[] = [];
        for await (const request of requests) {
          // Only the first message of the stream carries the definition.
          if (received.length === 0) definition = request.responseDefinition;
          received.push(anyPack(ClientStreamRequestSchema, request));
        }
        return answerOnce(definition, received, context);
      },

      async *serverStream(request, context) {
        const definition = request.responseDefinition;
        const received = [anyPack(ServerStreamRequestSchema, request)];
        yield* answerStream(definition, received, context);
      },

      async *bidiStream(requests, context) {
        let definition: StreamResponseDefinition | undefined;
        let fullDuplex = false;
        let sent = 0;
        let unanswered: Any[] = [];
        let first = true;
        for await (const request of requests) {
          if (first) {
            first = false;
            definition = request.responseDefinition;
            fullDuplex = request.fullDuplex;
            if (definition) setHeadersAndTrailers(definition, context);
          }
          unanswered.push(anyPack(BidiStreamRequestSchema, request));
          // Half duplex: read everything first. Full duplex: one response per request; once
          // the responses run out, stop reading and finish (a client waiting for a response to
          // its request would otherwise wait forever for the error).
          if (!fullDuplex) continue;
          if (!definition || sent >= definition.responseData.length) break;
          await sleep(definition.responseDelayMs);
          yield { payload: payload(definition.responseData[sent]!, requestInfo(context, unanswered)) };
          sent++;
          unanswered = [];
        }
        if (!definition) return;
        // What is left: every response of a half-duplex stream, or those a full-duplex client
        // did not send enough requests for. Only the first response carries the echo.
        const echo = requestInfo(context, unanswered);
        for (; sent < definition.responseData.length; sent++) {
          await sleep(definition.responseDelayMs);
          yield { payload: payload(definition.responseData[sent]!, sent === 0 ? echo : undefined) };
        }
        if (definition.error) throw toConnectError(definition.error, sentNothing(definition) ? [anyPack(ConformancePayload_RequestInfoSchema, echo)] : []);
      },
    },
    { jsonOptions: { registry: echoedTypes } },
  );
}

/** The answer of a unary or client-streaming call: one response, or the error asked for. */
async function answerOnce(definition: UnaryResponseDefinition | undefined, received: Any[], context: HandlerContext) {
  if (definition) setHeadersAndTrailers(definition, context);
  const echo = requestInfo(context, received);
  await sleep(definition?.responseDelayMs ?? 0);
  if (definition?.response.case === "error") throw toConnectError(definition.response.value, [anyPack(ConformancePayload_RequestInfoSchema, echo)]);
  return { payload: { requestInfo: echo, ...(definition?.response.case === "responseData" ? { data: definition.response.value } : {}) } };
}

/**
 * A server stream: headers go out at once (so the client can read them before the first
 * message), then each response after the delay, then the error if one is asked for.
 */
async function* answerStream(definition: StreamResponseDefinition | undefined, received: Any[], context: HandlerContext) {
  if (!definition) return;
  setHeadersAndTrailers(definition, context);
  const echo = requestInfo(context, received);
  for (const [index, data] of definition.responseData.entries()) {
    await sleep(definition.responseDelayMs);
    yield { payload: payload(data, index === 0 ? echo : undefined) };
  }
  if (definition.error) throw toConnectError(definition.error, sentNothing(definition) ? [anyPack(ConformancePayload_RequestInfoSchema, echo)] : []);
}

function setHeadersAndTrailers(definition: UnaryResponseDefinition | StreamResponseDefinition, context: HandlerContext): void {
  appendProtoHeaders(context.responseHeader, definition.responseHeaders);
  appendProtoHeaders(context.responseTrailer, definition.responseTrailers);
}

/** When no response went out, the echo rides on the error's details instead. */
function sentNothing(definition: StreamResponseDefinition): boolean {
  return definition.responseData.length === 0;
}

function requestInfo(context: HandlerContext, received: Any[]): ConformancePayload_RequestInfo {
  const timeoutMs = context.timeoutMs();
  return create(ConformancePayload_RequestInfoSchema, {
    requestHeaders: toProtoHeaders(context.requestHeader),
    requests: received,
    ...(timeoutMs === undefined ? {} : { timeoutMs: BigInt(timeoutMs) }),
  });
}

function payload(data: Uint8Array, echo: ConformancePayload_RequestInfo | undefined): Payload {
  return { data, ...(echo ? { requestInfo: echo } : {}) };
}
