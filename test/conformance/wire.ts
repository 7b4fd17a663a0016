import type { Readable, Writable } from "node:stream";
import { fromBinary, toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";

/**
 * The conformance runner talks to a program under test through its stdin and stdout, one
 * message at a time, each preceded by its length as a 32-bit big-endian integer
 * (docs/testing_servers.md and docs/testing_clients.md in connectrpc.com/conformance).
 */

/** readMessages yields every size-prefixed message of `input` until it ends. */
export async function* readMessages<Desc extends DescMessage>(schema: Desc, input: Readable): AsyncGenerator<MessageShape<Desc>> {
  let buffered: Buffer = Buffer.alloc(0);
  for await (const chunk of input) {
    buffered = buffered.length === 0 ? (chunk as Buffer) : Buffer.concat([buffered, chunk as Buffer]);
    while (buffered.length >= 4) {
      const size = buffered.readUInt32BE(0);
      if (buffered.length < 4 + size) break;
      yield fromBinary(schema, buffered.subarray(4, 4 + size));
      buffered = buffered.subarray(4 + size);
    }
  }
  if (buffered.length > 0) throw new Error(`stdin ended inside a message (${buffered.length} bytes left over)`);
}

/**
 * writeMessage writes one size-prefixed message as a single write, so that messages written
 * by calls finishing concurrently never interleave.
 */
export function writeMessage<Desc extends DescMessage>(schema: Desc, message: MessageShape<Desc>, output: Writable): void {
  const body = toBinary(schema, message);
  const framed = Buffer.alloc(4 + body.length);
  framed.writeUInt32BE(body.length, 0);
  framed.set(body, 4);
  output.write(framed);
}
