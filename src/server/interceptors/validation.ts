import type { Interceptor } from "@connectrpc/connect";

/**
 * unaryValidation applies a validating interceptor (protovalidate's, through
 * @connectrpc/validate) to calls whose request is a single message. A client stream is left to
 * its handler, which can count a bad item as failed and keep the good ones, rather than fail
 * the whole stream halfway and leave the client unsure which items landed.
 */
export function unaryValidation(validating: Interceptor): Interceptor {
  return (next) => {
    const validated = validating(next);
    return (request) => (request.method.methodKind === "client_streaming" || request.method.methodKind === "bidi_streaming" ? next(request) : validated(request));
  };
}
