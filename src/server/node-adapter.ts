import type http from "node:http";
import http2 from "node:http2";
import { Code, ConnectError, createConnectRouter, type ConnectRouter, type ConnectRouterOptions } from "@connectrpc/connect";
import { compressionBrotli, compressionGzip, universalRequestFromNodeRequest, universalResponseToNodeResponse, type connectNodeAdapter } from "@connectrpc/connect-node";
import { parseTimeout } from "@connectrpc/connect/protocol-grpc";

/** A request listener for http.Server, http2.Http2Server and http2.Http2SecureServer alike (connect-node's). */
export type NodeHandler = ReturnType<typeof connectNodeAdapter>;
export type NodeRequest = Parameters<NodeHandler>[0];
export type NodeResponse = Parameters<NodeHandler>[1];

/** NodeAdapterOptions configure `createNodeAdapter`: connect's router options and these. */
export interface NodeAdapterOptions extends ConnectRouterOptions {
  /** Mounts the services. */
  routes: (router: ConnectRouter) => void;
  /** Serves what no route matches. */
  fallback: NodeHandler;
}

/** setTimeout's largest delay (2^31-1 ms, about 24.8 days); a longer deadline needs no timer. */
const maxTimerMs = 2 ** 31 - 1;

/**
 * createNodeAdapter is connect-node's `connectNodeAdapter` (connect-node-adapter.ts, 2.3: the
 * same router, the same request and response conversion) with what a gRPC server owes its
 * callers on top:
 * - At the call's deadline, an HTTP/2 response still waiting for the client's flow-control
 *   window is reset with CANCEL (see `resetBlockedAtDeadline`).
 */
export function createNodeAdapter(options: NodeAdapterOptions): NodeHandler {
  const router = createConnectRouter({ acceptCompression: [compressionGzip, compressionBrotli], ...options });
  options.routes(router);
  const paths = new Map(router.handlers.map((handler) => [handler.requestPath, handler]));
  return (request, response) => {
    const handler = paths.get(request.url?.split("?", 2)[0] ?? "");
    if (!handler) return options.fallback(request, response);
    if ("stream" in response) resetBlockedAtDeadline(response.stream, request.headers);
    const universalRequest = universalRequestFromNodeRequest(request, response, undefined, undefined);
    handler(universalRequest)
      .then((universalResponse) => universalResponseToNodeResponse(universalResponse, response))
      .catch((reason: unknown) => {
        if (ConnectError.from(reason).code === Code.Aborted) return;
        console.error(`handler for rpc ${handler.method.name} of ${handler.service.typeName} failed`, reason);
      });
  };
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
