import type http2 from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";

/**
 * The gRPC-over-HTTP/2 wire pieces the lean gRPC path needs (PROTOCOL-HTTP2.md in grpc/grpc):
 * length-prefixed messages and header conversion. Error texts and codes are connect-node's, so
 * that a caller cannot tell which path served it.
 */

/** Bytes before each message: a compressed flag and a big-endian 32-bit length. */
const prefixBytes = 5;

/** prefix is the 5-byte length prefix of a message of `length` bytes, flagged compressed or not. */
export function prefix(length: number, compressed = false): Buffer {
  const head = Buffer.allocUnsafe(prefixBytes);
  head[0] = compressed ? 1 : 0;
  head.writeUInt32BE(length, 1);
  return head;
}

/** frame puts the length prefix (uncompressed) in front of a serialized message, in one buffer. */
export function frame(message: Uint8Array): Buffer {
  const framed = Buffer.allocUnsafe(prefixBytes + message.byteLength);
  framed[0] = 0;
  framed.writeUInt32BE(message.byteLength, 1);
  framed.set(message, prefixBytes);
  return framed;
}

/**
 * readSingleMessage reads a request body that must hold exactly one uncompressed message (unary
 * and server-streaming calls), with `readMaxBytes` as the largest message accepted. It fails as
 * soon as the prefix announces too large a message or a byte follows the first message, so a
 * hostile body is never buffered beyond the limit. `kind` only names the method kind in errors.
 */
export function readSingleMessage(stream: http2.ServerHttp2Stream, readMaxBytes: number, kind: string): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let received = 0;
    let declared = -1;
    const stop = (error: ConnectError) => {
      stream.off("data", onData);
      stream.off("end", onEnd);
      reject(error);
    };
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      received += chunk.byteLength;
      if (declared < 0 && received >= prefixBytes) {
        const head = chunks.length === 1 ? chunk : Buffer.concat(chunks);
        if (head[0]! > 1) return stop(invalidFlags(head[0]!));
        if (head[0] === 1) return stop(new ConnectError("received compressed envelope, but do not know how to decompress", Code.Internal));
        declared = head.readUInt32BE(1);
        if (declared > readMaxBytes) return stop(new ConnectError(`message size ${declared} is larger than configured readMaxBytes ${readMaxBytes}`, Code.ResourceExhausted));
      }
      if (declared >= 0 && received > prefixBytes + declared) {
        stop(new ConnectError(`protocol error: received extra input message for ${kind} method`, Code.Unimplemented));
      }
    };
    const onEnd = () => {
      stream.off("data", onData);
      if (received === 0) return reject(new ConnectError(`protocol error: missing input message for ${kind} method`, Code.Unimplemented));
      if (received < prefixBytes + Math.max(0, declared)) return reject(new ConnectError("protocol error: incomplete envelope", Code.InvalidArgument));
      const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, received);
      resolve(body.subarray(prefixBytes));
    };
    stream.on("data", onData);
    stream.once("end", onEnd);
  });
}

/** requestHeaders turns Node's incoming HTTP/2 headers into fetch Headers, without pseudo-headers. */
export function requestHeaders(incoming: http2.IncomingHttpHeaders): Headers {
  const headers = new Headers();
  for (const name in incoming) {
    if (name.charCodeAt(0) === 58 /* ":" */) continue;
    const value = incoming[name];
    if (typeof value === "string") headers.append(name, value);
    else if (value) for (const item of value) headers.append(name, item);
  }
  return headers;
}

/** The compressed-flag byte is 0 or 1 (PROTOCOL-HTTP2.md); grpc-go and grpc-java refuse any other value with INTERNAL. */
function invalidFlags(flags: number): ConnectError {
  return new ConnectError(`protocol error: compressed-flag ${flags} is neither 0 nor 1`, Code.Internal);
}

/**
 * checkEnvelopeFlags passes a gRPC request body through as it is, and fails it (INTERNAL) at the
 * first message whose compressed-flag byte is neither 0 nor 1, which connect-node would take for
 * an uncompressed message. It follows the messages' length prefixes across chunks; the payloads
 * are passed over, not read.
 */
export async function* checkEnvelopeFlags(body: AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array> {
  let prefixAt = 0; // the next prefix byte's offset (0: the flags), when no payload is left
  let length = 0;
  let payloadLeft = 0;
  for await (const chunk of body) {
    for (let at = 0; at < chunk.byteLength; ) {
      if (payloadLeft > 0) {
        const skipped = Math.min(payloadLeft, chunk.byteLength - at);
        payloadLeft -= skipped;
        at += skipped;
        continue;
      }
      const byte = chunk[at++]!;
      if (prefixAt === 0 && byte > 1) throw invalidFlags(byte);
      if (prefixAt > 0) length = length * 256 + byte;
      if (++prefixAt === prefixBytes) {
        payloadLeft = length;
        prefixAt = 0;
        length = 0;
      }
    }
    yield chunk;
  }
}

/**
 * addHeaders copies fetch Headers into Node's outgoing header object. Headers joins a name's
 * repeated values with ", "; a `-bin` header's values are base64 (no comma), so they are split
 * back into separate values, as gRPC sends them (grpc-go decodes each value of a joined one as
 * base64 and fails on the space).
 */
export function addHeaders(target: http2.OutgoingHttpHeaders, headers: Headers): http2.OutgoingHttpHeaders {
  headers.forEach((value, name) => {
    target[name] = name.endsWith("-bin") && value.includes(",") ? splitBinaryValues(value) : value;
  });
  return target;
}

/**
 * binaryValuesApart gives connect-node's writer `headers` with a repeated `-bin` header's values
 * as separate entries (see `addHeaders`); `headers` as they are when there is none. The entries
 * are a list of pairs: universalResponseToNodeResponse converts headers with connect-node's
 * webHeaderToNodeHeaders, which takes any HeadersInit and writes a name repeated in a list as
 * separate values (UniversalServerResponse's type says Headers only; the host's tests pin this).
 */
export function binaryValuesApart(headers: Headers | undefined): Headers | undefined {
  if (!headers) return headers;
  let joined = false;
  headers.forEach((value, name) => void (joined ||= name.endsWith("-bin") && value.includes(",")));
  if (!joined) return headers;
  const pairs: [string, string][] = [];
  headers.forEach((value, name) => {
    if (name.endsWith("-bin") && value.includes(",")) for (const item of splitBinaryValues(value)) pairs.push([name, item]);
    else pairs.push([name, value]);
  });
  return pairs as unknown as Headers;
}

function splitBinaryValues(joined: string): string[] {
  return joined.split(",").map((item) => item.trim());
}
