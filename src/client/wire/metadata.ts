import { Metadata, type MetadataValue } from "@grpc/grpc-js";

/**
 * Headers a gRPC client library owns on the wire: grpc-js writes its own (path, content type,
 * deadline, TE, user agent), so a caller's copy is not forwarded. connect-node's gRPC transport
 * likewise sets these itself. HTTP/1 connection headers are refused by HTTP/2 (RFC 9113, 8.2.2).
 */
export const protocolHeaders = new Set(["content-type", "te", "grpc-timeout", "grpc-encoding", "grpc-accept-encoding", "user-agent", "host", "connection", "content-length", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"]);

/**
 * headersToMetadata turns a Connect request's `Headers` into grpc-js `Metadata`. Keys ending in
 * `-bin` carry base64 text in `Headers` (Connect's `encodeBinaryHeader`) and bytes in `Metadata`;
 * several values of one `-bin` key arrive comma-joined and are split again.
 */
export function headersToMetadata(headers: Headers): Metadata {
  const metadata = new Metadata();
  headers.forEach((value, key) => {
    if (protocolHeaders.has(key) || key.startsWith(":")) return;
    if (key.endsWith("-bin")) {
      for (const part of value.split(",")) metadata.add(key, Buffer.from(part.trim(), "base64"));
    } else {
      metadata.add(key, value);
    }
  });
  return metadata;
}

/**
 * metadataToHeaders turns grpc-js response `Metadata` (headers or trailers) into `Headers` as
 * connect-node gives them: binary values as unpadded standard base64, like Connect's
 * `encodeBinaryHeader`, so `decodeBinaryHeader` reads them back.
 */
export function metadataToHeaders(metadata: Metadata, into = new Headers()): Headers {
  const entries = metadata.toJSON();
  for (const key in entries) {
    const binary = key.endsWith("-bin");
    for (const value of entries[key]!) into.append(key, binary ? binaryHeaderValue(value) : String(value));
  }
  return into;
}

function binaryHeaderValue(value: MetadataValue): string {
  const bytes = typeof value === "string" ? Buffer.from(value) : value;
  return bytes.toString("base64").replace(/=+$/, "");
}

/**
 * MetadataHeaders are the `Headers` of a response, filled from grpc-js `Metadata` only when first
 * read. Every unary response carries response headers and trailers, and most callers (the mesh
 * client included) never look at them: converting both eagerly cost a measurable share of a
 * call's CPU (undici's `Headers.append` validates each name and value).
 */
export class MetadataHeaders extends Headers {
  #pending: Metadata | undefined;

  constructor(metadata: Metadata) {
    super();
    this.#pending = metadata;
  }

  static {
    // Every way to read or change the headers loads them first. (Patched onto the prototype:
    // Node's typings declare Headers' methods as properties, which a subclass cannot override.)
    const load = (headers: MetadataHeaders) => {
      const metadata = headers.#pending;
      if (metadata === undefined) return;
      headers.#pending = undefined;
      metadataToHeaders(metadata, headers);
    };
    const methods = ["append", "delete", "get", "getSetCookie", "has", "set", "forEach", "entries", "keys", "values", Symbol.iterator] as const;
    for (const name of methods) {
      const original = Headers.prototype[name] as (...args: unknown[]) => unknown;
      Object.defineProperty(MetadataHeaders.prototype, name, {
        value: function (this: MetadataHeaders, ...args: unknown[]) {
          load(this);
          return original.apply(this, args);
        },
        writable: true,
        configurable: true,
      });
    }
  }
}
