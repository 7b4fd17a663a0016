/**
 * encodeGrpcMessage percent-encodes a `grpc-message` value as the gRPC spec and grpc-go do:
 * only bytes outside printable ASCII (0x20-0x7E) and `%` itself, each UTF-8 byte as `%XX`.
 * connect-es encodes with `encodeURIComponent`, which also escapes `:`, `/`, `,` and more; grpc-js
 * decodes with `decodeURI`, which leaves those escaped, so a grpc-js caller read
 * `"web" may not call "echo"%3A denied` where grpc-go's callers read a colon.
 * (PROTOCOL-HTTP2.md: Percent-Byte-Unencoded = %x20-%x24 / %x26-%x7E.)
 */
export function encodeGrpcMessage(message: string): string {
  if (plain.test(message)) return message;
  let encoded = "";
  for (const byte of Buffer.from(message, "utf8")) {
    encoded += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return encoded;
}

/** A message with nothing to encode (the common case: sent as it is). */
const plain = /^[\x20-\x24\x26-\x7e]*$/;
