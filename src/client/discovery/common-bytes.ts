/**
 * How many bytes two buffers have in common at their start, and at their end: where a new
 * discovery answer differs from the last one. Node has no native "first mismatch"; these find it
 * with native comparisons of growing runs and then halving ones, a few dozen calls in all
 * whatever the size, instead of a loop over every byte in JavaScript.
 */

/** The length of the longest common prefix of `a` and `b`. */
export function commonPrefixLength(a: Buffer, b: Buffer): number {
  const length = Math.min(a.length, b.length);
  return commonRun(length, (from, to) => a.compare(b, from, to, from, to) === 0);
}

/** The length of the longest common suffix of `a` and `b`, at most `limit`. */
export function commonSuffixLength(a: Buffer, b: Buffer, limit = Infinity): number {
  const length = Math.min(a.length, b.length, limit);
  // Run [from, to) counts back from the ends: bytes a.length - to .. a.length - from.
  return commonRun(length, (from, to) => a.compare(b, b.length - to, b.length - from, a.length - to, a.length - from) === 0);
}

/** The longest n <= length with equal(0, n); `equal(from, to)` compares one run. */
function commonRun(length: number, equal: (from: number, to: number) => boolean): number {
  let at = 0;
  let step = 4096;
  while (at < length) {
    const to = Math.min(length, at + step);
    if (!equal(at, to)) return at + firstMismatch(at, to, equal);
    at = to;
    step *= 2;
  }
  return length;
}

/** Within [from, to), which is known to differ somewhere: how far from `from` the runs agree. */
function firstMismatch(from: number, to: number, equal: (from: number, to: number) => boolean): number {
  let low = from; // [from, low) agrees
  let high = to; // [from, high) does not
  while (high - low > 1) {
    const middle = (low + high) >>> 1;
    if (equal(low, middle)) low = middle;
    else high = middle;
  }
  return low - from;
}
