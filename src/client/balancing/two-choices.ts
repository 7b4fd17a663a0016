import { emptyPicker, firstNotExcluded, type Balancer, type Endpoint, type Picker, weightOf } from "./balancer.js";
import { createWeightedIndex, uniformWeights } from "./weighted-index.js";

/**
 * twoChoicesPicker is "the power of two choices" (Mitzenmacher 2001): draw two distinct
 * endpoints at random (by weight when weights differ) and take the one of lower `cost`. Nearly
 * as good as scanning every endpoint for the least loaded, at O(1), and without the herding a
 * global minimum causes when many clients see the same numbers. Shared by the least-outstanding
 * and peak-EWMA balancers, which differ only in their cost.
 */
export function twoChoicesPicker(
  endpoints: readonly Endpoint[],
  cost: (endpoint: Endpoint, nowMs: number) => number,
  random: () => number,
): Picker {
  const n = endpoints.length;
  if (n === 0) return emptyPicker;
  const weights = endpoints.map((endpoint) => weightOf(endpoint));
  const weighted = uniformWeights(weights) ? undefined : createWeightedIndex(weights);
  const draw = weighted ? () => weighted.draw(random) : () => Math.floor(random() * n);
  return {
    pick(exclude) {
      if (n === 1) {
        const only = endpoints[0]!;
        return exclude?.has(only) ? undefined : only;
      }
      const a = draw();
      let b = draw();
      // A second distinct index: retry once by weight, then take a uniform other one.
      if (b === a) b = draw();
      if (b === a) b = (a + 1 + Math.floor(random() * (n - 1))) % n;
      const first = endpoints[a]!;
      const second = endpoints[b]!;
      if (exclude !== undefined) {
        const firstOk = !exclude.has(first);
        const secondOk = !exclude.has(second);
        if (!firstOk || !secondOk) {
          if (firstOk) return first;
          if (secondOk) return second;
          return firstNotExcluded(endpoints, a, exclude);
        }
      }
      const now = performance.now();
      return cost(second, now) < cost(first, now) ? second : first;
    },
  };
}

export function twoChoicesBalancer(
  name: string,
  cost: (endpoint: Endpoint, nowMs: number) => number,
  random: () => number = Math.random,
): Balancer {
  return { name, picker: (endpoints) => twoChoicesPicker(endpoints, cost, random) };
}
