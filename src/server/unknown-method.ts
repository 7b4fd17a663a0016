import type http from "node:http";
import { closeEarly } from "./close-early.js";
import { encodeGrpcMessage } from "./grpc-message.js";
import type { NodeRequest, NodeResponse } from "./node-adapter.js";

/**
 * answerUnknownMethod answers a gRPC or gRPC-Web request for a method this server does not serve
 * as grpc-go's server does (server.go, handleStream): HTTP 200, a trailers-only response (one
 * header block, no body) with `grpc-status` 12 (UNIMPLEMENTED) and a `grpc-message` naming what
 * is missing: `unknown service x.Y`, `unknown method M for service x.Y`, or
 * `malformed method name: "..."`. gRPC clients read a bare HTTP 404 as UNIMPLEMENTED too, but
 * without saying what was called. It returns false, answering nothing, for any other request
 * (Connect, `GET /metrics`, a browser): those keep connect-node's HTTP 404.
 *
 * `services` are the fully-qualified names of the services the host serves.
 */
export function answerUnknownMethod(request: NodeRequest, response: NodeResponse, services: ReadonlySet<string>): boolean {
  return answerTrailersOnly(request, response, 12, unknownMethodMessage(request.url?.split("?")[0] ?? "", services));
}

/**
 * answerTrailersOnly answers a gRPC or gRPC-Web request with HTTP 200 and a trailers-only
 * response carrying `status` and `message`; it returns false, answering nothing, for any other
 * request.
 */
export function answerTrailersOnly(request: NodeRequest, response: NodeResponse, status: number, message: string): boolean {
  const contentType = request.headers["content-type"] ?? "";
  if (request.method !== "POST" || !contentType.startsWith("application/grpc")) return false;
  const responseType = contentType.startsWith("application/grpc-web-text")
    ? "application/grpc-web-text"
    : contentType.startsWith("application/grpc-web")
      ? "application/grpc-web"
      : contentType.startsWith("application/grpc+") || contentType === "application/grpc"
        ? "application/grpc"
        : undefined;
  if (!responseType) return false;
  const headers = { "content-type": responseType, "grpc-status": String(status), "grpc-message": encodeGrpcMessage(message) };
  if ("stream" in response) {
    // Node's compatibility response cannot end a stream with its headers: it would send them,
    // then an empty DATA frame, which gRPC clients do not read as trailers-only.
    const stream = response.stream;
    stream.respond({ ":status": 200, ...headers }, { endStream: true });
    closeEarly(stream);
  } else {
    (response as http.ServerResponse).writeHead(200, headers);
    response.end();
  }
  return true;
}

/** grpc-go's texts: the service is named when the server does not serve it, else the method too. */
export function unknownMethodMessage(path: string, services: ReadonlySet<string>): string {
  const name = path.startsWith("/") ? path.slice(1) : path;
  const slash = name.lastIndexOf("/");
  if (slash < 0) return `malformed method name: ${JSON.stringify(path)}`;
  const service = name.slice(0, slash);
  return services.has(service) ? `unknown method ${name.slice(slash + 1)} for service ${service}` : `unknown service ${service}`;
}
