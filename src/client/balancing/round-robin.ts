import { emptyPicker, firstNotExcluded, type Balancer, type Endpoint, weightOf } from "./balancer.js";
import { uniformWeights } from "./weighted-index.js";

/** The longest weighted schedule kept; larger weight sums are scaled down to fit. */
const maxScheduleLength = 4096;

/**
 * roundRobinBalancer ("round_robin") takes endpoints in turn. With unequal Consul weights it
 * follows a precomputed smooth weighted round-robin schedule (nginx's algorithm: weight 5,1,1
 * gives a a b a c a a, never a a a a a b c), so a pick stays O(1). The position survives
 * instance set changes, so a change does not send the next call to the first instance again.
 */
export function roundRobinBalancer(): Balancer {
  let position = 0;
  return {
    name: "round_robin",
    picker(endpoints) {
      if (endpoints.length === 0) return emptyPicker;
      const schedule = weightedSchedule(endpoints);
      return {
        pick(exclude) {
          position = (position + 1) % 0x40000000;
          const chosen = schedule[position % schedule.length]!;
          if (exclude === undefined || !exclude.has(chosen)) return chosen;
          return firstNotExcluded(endpoints, endpoints.indexOf(chosen), exclude);
        },
      };
    },
  };
}

function weightedSchedule(endpoints: readonly Endpoint[]): readonly Endpoint[] {
  const exact = endpoints.map((endpoint) => weightOf(endpoint));
  if (uniformWeights(exact)) return endpoints;
  // Weights may be fractions (slow start ramps 1 up from 0.1): integers in tenths of the
  // smallest keep their ratios to 10%, then the gcd shortens the schedule again.
  const smallest = Math.min(...exact.filter((weight) => weight > 0));
  const weights = exact.map((weight) => Math.max(1, Math.round((weight / smallest) * 10)));
  const divisor = weights.reduce(gcd);
  let scaled = weights.map((weight) => weight / divisor);
  const total = scaled.reduce((sum, weight) => sum + weight, 0);
  if (total > maxScheduleLength) {
    scaled = scaled.map((weight) => Math.max(1, Math.round((weight * maxScheduleLength) / total)));
  }
  const length = scaled.reduce((sum, weight) => sum + weight, 0);
  const current = scaled.map(() => 0);
  const schedule: Endpoint[] = [];
  for (let step = 0; step < length; step++) {
    let best = 0;
    for (let i = 0; i < scaled.length; i++) {
      current[i]! += scaled[i]!;
      if (current[i]! > current[best]!) best = i;
    }
    current[best]! -= length;
    schedule.push(endpoints[best]!);
  }
  return schedule;
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

