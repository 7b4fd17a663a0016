import type http from "node:http";
import http2 from "node:http2";
import { Code, ConnectError, createConnectRouter, type ConnectRouter, type ConnectRouterOptions, type ContextValues } from "@connectrpc/connect";
import { compressionBrotli, compressionGzip, universalRequestFromNodeRequest, universalResponseToNodeResponse, type connectNodeAdapter } from "@connectrpc/connect-node";
import { parseTimeout } from "@connectrpc/connect/protocol-grpc";
import { binaryValuesApart, checkEnvelopeFlags } from "./grpc-wire.js";

/** A request listener for http.Server, http2.Http2Server and http2.Http2SecureServer alike (connect-node's). */
export type NodeHandler = ReturnType<typeof connectNodeAdapter>;
export type NodeRequest = Parameters<NodeHandler>[0];
export type NodeResponse = Parameters<NodeHandler>[1];

/** Where the host reports what fails outside every handler: a pino Logger fits. */
export interface HostLog {
  debug(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

/** NodeAdapterOptions configure `createNodeAdapter`: connect's router options and these. */
export interface NodeAdapterOptions extends Omit<ConnectRouterOptions, "compressMinBytes"> {
  /** Response messages of at least this many bytes are compressed when the caller accepts it; undefined: none is. */
  compressMinBytes: number | undefined;
  /** Mounts the services. */
  routes: (router: ConnectRouter) => void;
  /** Serves what no route matches. */
  fallback: NodeHandler;
  /** Where an answer that could not be written is reported (see `createNodeAdapter`). */
  log: HostLog;
  /** A new call's context values, from its request (connect-node's own `contextValues` option). */
  contextValues?: (request: Parameters<NodeHandler>[0]) => ContextValues;
}

/** setTimeout's largest delay (2^31-1 ms, about 24.8 days); a longer deadline needs no timer. */
const maxTimerMs = 2 ** 31 - 1;

/**
 * createNodeAdapter is connect-node's `connectNodeAdapter` (connect-node-adapter.ts, 2.3: the
 * same router, the same request and response conversion) with what a gRPC server owes its
 * callers on top:
 * - At the call's deadline, an HTTP/2 response still waiting for the client's flow-control
 *   window is reset with CANCEL (see `resetBlockedAtDeadline`).
 * - With compression off (`compressMinBytes` undefined), no response is compressed, and none
 *   names an encoding (connect-node names the one it negotiated all the same).
 * - A gRPC request message whose compressed-flag byte is neither 0 nor 1 fails with INTERNAL
 *   (`checkEnvelopeFlags`), and a repeated `-bin` header's values go out as separate values
 *   (`binaryValuesApart`), as on the lean gRPC path.
 * - An answer that could not be written because the client went away (it reset the stream or
 *   closed the connection: `write ECANCELED`, ERR_STREAM_DESTROYED, "Premature close",
 *   ECONNRESET, ...) is logged at debug level: no fault of the server's. connect-node prints
 *   every such failure but those it maps to ABORTED with console.error, a reset stream with data
 *   still queued (`write ECANCELED`) among them. Any other failure is logged at error level.
 */
export function createNodeAdapter(options: NodeAdapterOptions): NodeHandler {
  const compressing = options.compressMinBytes !== undefined;
  const router = createConnectRouter({ acceptCompression: [compressionGzip, compressionBrotli], ...options, compressMinBytes: options.compressMinBytes ?? Number.MAX_SAFE_INTEGER });
  options.routes(router);
  const paths = new Map(router.handlers.map((handler) => [handler.requestPath, handler]));
  return (request, response) => {
    const handler = paths.get(request.url?.split("?", 2)[0] ?? "");
    if (!handler) return options.fallback(request, response);
    if ("stream" in response) resetBlockedAtDeadline(response.stream, request.headers);
    const universalRequest = universalRequestFromNodeRequest(request, response, undefined, options.contextValues?.(request));
    if (isGrpc(request.headers["content-type"]) && isByteStream(universalRequest.body)) universalRequest.body = checkEnvelopeFlags(universalRequest.body);
    handler(universalRequest)
      .then((universalResponse) => {
        // No message is compressed: connect-node still names the encoding it negotiated.
        if (!compressing) for (const name of encodingHeaders) universalResponse.header?.delete(name);
        const { header, trailer } = universalResponse;
        return universalResponseToNodeResponse({ ...universalResponse, header: binaryValuesApart(header), trailer: binaryValuesApart(trailer) }, response);
      })
      .catch((reason: unknown) => {
        const fields = { err: reason, procedure: `${handler.service.typeName}/${handler.method.name}` };
        if (universalRequest.signal.aborted || isHangUp(reason)) options.log.debug(fields, "the client went away before its answer was written");
        else options.log.error(fields, "writing an answer failed");
      });
  };
}

/** The headers naming a streamed response's compression: gRPC's and gRPC-Web's, Connect's. */
const encodingHeaders = ["grpc-encoding", "connect-content-encoding"];

/** gRPC, not gRPC-Web: "application/grpc", "application/grpc+proto", ... */
function isGrpc(contentType: string | undefined): boolean {
  return contentType !== undefined && contentType.startsWith("application/grpc") && !contentType.startsWith("application/grpc-web");
}

function isByteStream(body: unknown): body is AsyncIterable<Uint8Array> {
  return typeof body === "object" && body !== null && Symbol.asyncIterator in body;
}

/** Node's codes for a stream or connection the other side ended, anywhere in an error's causes. */
const hangUpCodes = new Set(["ECANCELED", "ECONNRESET", "EPIPE", "ERR_STREAM_DESTROYED", "ERR_STREAM_PREMATURE_CLOSE", "ERR_HTTP2_INVALID_STREAM", "ERR_HTTP2_STREAM_ERROR", "ERR_STREAM_WRITE_AFTER_END"]);

function isHangUp(reason: unknown): boolean {
  for (let error = reason, depth = 0; error instanceof Error && depth < 8; error = error.cause, depth++) {
    const code = (error as { code?: unknown }).code;
    if (typeof code === "string" && hangUpCodes.has(code)) return true;
    if (error instanceof ConnectError && error.code === Code.Aborted) return true;
  }
  return false;
}

/**
 * At the call's deadline, resets an HTTP/2 stream whose response is still waiting for the
 * client's flow-control window (a client that stopped reading) with CANCEL, as the lean gRPC
 * path does (GrpcReply.expire). connect-node only aborts the handler's signal then; a streaming
 * handler suspended at a `yield` never sees it, and the stream would stay open for as long as the
 * client does not read. Once the stream is reset, connect-node's writer fails and finalizes the
 * handler. A response that is not blocked is left to connect-node and the handler.
 */
function resetBlockedAtDeadline(stream: http2.ServerHttp2Stream, headers: http.IncomingHttpHeaders | http2.IncomingHttpHeaders): void {
  const timeoutMs = requestTimeoutMs(headers);
  if (timeoutMs === undefined || timeoutMs > maxTimerMs) return;
  const timer = setTimeout(() => {
    if (!stream.destroyed && stream.writableLength > 0) stream.close(http2.constants.NGHTTP2_CANCEL);
  }, timeoutMs);
  stream.once("close", () => clearTimeout(timer));
}

/** The call's timeout as its protocol gives it: gRPC's and gRPC-Web's `grpc-timeout`, Connect's `connect-timeout-ms`. */
function requestTimeoutMs(headers: http.IncomingHttpHeaders | http2.IncomingHttpHeaders): number | undefined {
  const grpc = headers["grpc-timeout"];
  if (typeof grpc === "string") return parseTimeout(grpc, Number.MAX_SAFE_INTEGER).timeoutMs;
  const connect = headers["connect-timeout-ms"];
  return typeof connect === "string" && /^\d{1,10}$/.test(connect) ? Number(connect) : undefined;
}
