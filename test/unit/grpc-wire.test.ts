import assert from "node:assert/strict";
import { ConnectError } from "@connectrpc/connect";
import { addHeaders, binaryValuesApart, checkEnvelopeFlags } from "../../src/server/grpc-wire.js";

/** `bytes` in chunks cut at `cuts`, as a request body arrives. */
async function* chunked(bytes: Buffer, cuts: number[]): AsyncIterable<Uint8Array> {
  let from = 0;
  for (const cut of [...cuts, bytes.length]) {
    yield bytes.subarray(from, cut);
    from = cut;
  }
}

async function collect(body: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of body) chunks.push(chunk);
  return Buffer.concat(chunks);
}

const message = (flags: number, payload: number[]) => Buffer.from([flags, 0, 0, 0, payload.length, ...payload]);

describe("grpc-wire", () => {
  it("checkEnvelopeFlags passes well-formed messages through, however the body is cut", async () => {
    const body = Buffer.concat([message(0, [1, 2, 3]), message(1, []), message(0, [4])]);
    for (let first = 0; first <= body.length; first++) {
      for (let second = first; second <= body.length; second++) {
        assert.deepEqual(await collect(checkEnvelopeFlags(chunked(body, [first, second]))), body, `cut at ${first} and ${second}`);
      }
    }
  });

  it("checkEnvelopeFlags fails at a compressed-flag byte other than 0 or 1, however the body is cut", async () => {
    // The second message's flags byte is 2; its payload byte 2 in the first is no flags byte.
    const body = Buffer.concat([message(0, [2, 2]), message(2, [1])]);
    for (let cut = 0; cut <= body.length; cut++) {
      await assert.rejects(collect(checkEnvelopeFlags(chunked(body, [cut]))), (error: unknown) => error instanceof ConnectError && /compressed-flag 2/.test(error.rawMessage), `cut at ${cut}`);
    }
  });

  it("writes a repeated -bin header's values apart, and other headers as fetch joins them", () => {
    const headers = new Headers();
    headers.append("x-data-bin", "AAEC");
    headers.append("x-data-bin", "AwQF");
    headers.append("x-text", "a");
    headers.append("x-text", "b");
    assert.deepEqual(addHeaders({}, headers), { "x-data-bin": ["AAEC", "AwQF"], "x-text": "a, b" });
    assert.deepEqual(binaryValuesApart(headers), [
      ["x-data-bin", "AAEC"],
      ["x-data-bin", "AwQF"],
      ["x-text", "a, b"],
    ]);
    const single = new Headers({ "x-one-bin": "AAEC" });
    assert.equal(binaryValuesApart(single), single);
  });
});
