import type http2 from "node:http2";
import type { Socket } from "node:net";
import { createContextKey, createContextValues, type ContextValues } from "@connectrpc/connect";

/**
 * The connection a call arrived on: its HTTP/2 session, or its socket for HTTP/1.1. Interceptors
 * that decide by who is calling (the mesh's mutual TLS, see mesh/authorization.ts) read the
 * peer's certificate from it; both the lean gRPC path and connect-node record it on every call.
 */
export type CallConnection = http2.Http2Session | Socket;

export const callConnectionKey = createContextKey<CallConnection | undefined>(undefined, { description: "meshkit call connection" });

/** The connection of a Node request: its HTTP/2 session, or its socket for HTTP/1.1. */
export function connectionOf(request: { socket: Socket; stream?: http2.Http2Stream }): CallConnection {
  // Http2ServerRequest.socket is a per-stream proxy; the session is one object per connection.
  return request.stream?.session ?? request.socket;
}

/** connect-node's `contextValues` hook: a new call's values, carrying the connection it came on. */
export function connectionContextValues(request: { socket: Socket; stream?: http2.Http2Stream }): ContextValues {
  const values = createContextValues();
  values.set(callConnectionKey, connectionOf(request));
  return values;
}
