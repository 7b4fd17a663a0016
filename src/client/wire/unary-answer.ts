import type { DescMessage, DescMethodUnary, MessageShape } from "@bufbuild/protobuf";
import type { UnaryResponse } from "@connectrpc/connect";

/**
 * unaryAnswer is the response of a unary call that succeeded, its headers and trailers made into
 * `Headers` by `toHeaders` (from grpc-js Metadata or from HTTP/2 headers, whichever wire carried
 * the call) when first read. Most callers (the mesh client included) never read them, and the two
 * `Headers` objects, even filled lazily, were a measurable share of a call's allocation. The
 * getters are the object's own, so a spread (`{ ...response }`) copies them.
 */
export function unaryAnswer<I extends DescMessage, O extends DescMessage, S>(
  method: DescMethodUnary<I, O>,
  message: MessageShape<O>,
  headerSource: S | undefined,
  trailerSource: S,
  toHeaders: (source: S, trailers: boolean) => Headers,
): UnaryResponse<I, O> {
  let headers: Headers | undefined;
  let trailers: Headers | undefined;
  return {
    stream: false,
    service: method.parent,
    method,
    message,
    get header() {
      return (headers ??= headerSource ? toHeaders(headerSource, false) : new Headers());
    },
    get trailer() {
      return (trailers ??= toHeaders(trailerSource, true));
    },
  };
}

