import type http2 from "node:http2";
import type { GrpcStreamHandler } from "./grpc-stream-handler.js";

/**
 * routeHttp2Streams lets `first` take each new HTTP/2 stream of `server` before Node's
 * compatibility layer (http2.Http2ServerRequest/Response, which connect-node's adapter needs)
 * is built for it; streams it declines go on to that layer and the server's 'request' listeners
 * as before. Call it after the 'request' listener is attached.
 *
 * Node installs its compatibility layer as a 'stream' listener when the first 'request' listener
 * is added (setupCompat in lib/internal/http2/core.js); listeners cannot stop each other, so that
 * one listener is taken out and called only for the streams `first` declines.
 */
export function routeHttp2Streams(server: http2.Http2Server | http2.Http2SecureServer, first: GrpcStreamHandler): void {
  const compatibility = server.listeners("stream");
  if (compatibility.length !== 1) throw new Error(`expected Node's one compatibility 'stream' listener, found ${compatibility.length}`);
  const [toCompatibility] = compatibility as [(...args: unknown[]) => void];
  server.removeListener("stream", toCompatibility);
  server.on("stream", (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, flags: number, rawHeaders: string[]) => {
    if (!first(stream, headers)) toCompatibility.call(server, stream, headers, flags, rawHeaders);
  });
}
