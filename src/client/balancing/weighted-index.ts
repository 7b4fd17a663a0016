/**
 * WeightedIndex draws an index in proportion to weights in O(1), by Vose's alias method
 * (Vose 1991, "A linear algorithm for generating random numbers with a given distribution").
 * No library on npm does this without allocating per draw, hence this small one.
 */
export interface WeightedIndex {
  /** An index in [0, n), drawn with probability weight[i] / sum(weights). */
  draw(random: () => number): number;
}

export function createWeightedIndex(weights: readonly number[]): WeightedIndex {
  const n = weights.length;
  const total = weights.reduce((sum, weight) => sum + weight, 0);
  const probability = new Float64Array(n);
  const alias = new Uint32Array(n);
  const scaled = weights.map((weight) => (weight * n) / total);
  const small: number[] = [];
  const large: number[] = [];
  scaled.forEach((value, index) => (value < 1 ? small : large).push(index));
  while (small.length > 0 && large.length > 0) {
    const less = small.pop()!;
    const more = large.pop()!;
    probability[less] = scaled[less]!;
    alias[less] = more;
    scaled[more] = scaled[more]! + scaled[less]! - 1;
    (scaled[more]! < 1 ? small : large).push(more);
  }
  for (const index of [...small, ...large]) probability[index] = 1;
  return {
    draw(random) {
      const column = Math.floor(random() * n);
      return random() < probability[column]! ? column : alias[column]!;
    },
  };
}

/** True when every weight is the same, so that plain uniform choice is exact and cheaper. */
export function uniformWeights(weights: readonly number[]): boolean {
  return weights.every((weight) => weight === weights[0]);
}
