import { emptyPicker, firstNotExcluded, type Balancer, weightOf } from "./balancer.js";
import { createWeightedIndex, uniformWeights } from "./weighted-index.js";

/**
 * randomBalancer ("random") picks uniformly at random, or in proportion to Consul weights
 * when they differ (O(1) by the alias method).
 */
export function randomBalancer(random: () => number = Math.random): Balancer {
  return {
    name: "random",
    picker(endpoints) {
      const n = endpoints.length;
      if (n === 0) return emptyPicker;
      const weights = endpoints.map((endpoint) => weightOf(endpoint));
      const weighted = uniformWeights(weights) ? undefined : createWeightedIndex(weights);
      return {
        pick(exclude) {
          const index = weighted ? weighted.draw(random) : Math.floor(random() * n);
          const chosen = endpoints[index]!;
          if (exclude === undefined || !exclude.has(chosen)) return chosen;
          return firstNotExcluded(endpoints, index, exclude);
        },
      };
    },
  };
}

