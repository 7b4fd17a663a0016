import type { Endpoint } from "../../src/client/balancing/balancer.js";
import type { Instance } from "../../src/client/discovery/instance.js";

/** An endpoint with a load the test sets by hand: balancers read nothing else. */
export interface FakeEndpoint extends Endpoint {
  load: { outstanding: number; latency: number; latencyCost(nowMs: number): number };
}

export function fakeEndpoint(id: string, weight = 1, outstanding = 0, latency = 0): FakeEndpoint {
  const instance: Instance = { id, address: "127.0.0.1", port: 1, weight, tags: [], meta: {} };
  const load = {
    outstanding,
    latency,
    latencyCost() {
      return load.latency;
    },
  };
  return { instance, load };
}

/** Counts how often each endpoint id is picked in `n` picks. */
export function countPicks(pick: () => Endpoint | undefined, n: number): Map<string, number> {
  const counts = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const id = pick()?.instance.id ?? "none";
    counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  return counts;
}
