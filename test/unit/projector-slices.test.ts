import assert from "node:assert/strict";
import { slicesByBytes } from "../../src/reference/events/projector.js";
import type { StreamEntry } from "../../src/reference/events/dead-letter.js";

/** An entry whose fields hold `bytes` characters in all ("payload" plus its value). */
const entry = (id: string, bytes: number): StreamEntry => [id, ["payload", "x".repeat(bytes - "payload".length)]];

describe("slicesByBytes (the projector applies a round's entries in bounded slices)", () => {
  it("keeps entries in order and cuts before the entry that would pass the bound", () => {
    const slices = slicesByBytes([entry("1", 400), entry("2", 400), entry("3", 400), entry("4", 100)], 1000);
    assert.deepEqual(slices.map((slice) => slice.map(([id]) => id)), [["1", "2"], ["3", "4"]]);
  });

  it("gives an entry larger than the bound a slice of its own, never drops it", () => {
    const slices = slicesByBytes([entry("1", 100), entry("big", 5000), entry("3", 100)], 1000);
    assert.deepEqual(slices.map((slice) => slice.map(([id]) => id)), [["1"], ["big"], ["3"]]);
  });

  it("returns one slice when everything fits, none for no entries", () => {
    assert.deepEqual(slicesByBytes([entry("1", 10), entry("2", 10)], 1000).length, 1);
    assert.deepEqual(slicesByBytes([], 1000), []);
  });
});
