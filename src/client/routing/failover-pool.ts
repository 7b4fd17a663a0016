import type { ConnectError } from "@connectrpc/connect";
import type { Outcome } from "../call/outcome-classifier.js";
import type { EndpointPool, EndpointSet, Pick } from "../endpoints/endpoint-set.js";
import type { MeshEndpoint } from "../endpoints/endpoint.js";
import type { EndpointSeries } from "../telemetry/endpoint-metrics.js";

/**
 * FailoverPool picks from a resolver's target and, when that target has no healthy instance, from
 * its failover targets in order (Consul's service-resolver `Failover`: other subsets, services or
 * datacenters). "Healthy" is what Envoy's priority failover reads: passing in Consul (the set holds
 * only those) and not ejected by its breaker. The ejection cap, which keeps one instance of a set
 * in the picks whatever its breaker says, does not hold a call back here while a next target
 * exists: a target whose every instance has an open breaker is passed over. A call that tried
 * every healthy instance of a target (its retries) goes on to the next target too. The last target
 * is always tried as the set stands, so without any healthy instance left anywhere the pool
 * behaves as one endpoint set does.
 *
 * A half-open instance is healthy (its probe slot is free), so a healed target takes its probe
 * and, once its breaker closes, its traffic back.
 */
export class FailoverPool implements EndpointPool {
  constructor(private readonly sets: readonly EndpointSet[]) {}

  pick(exclude: ReadonlySet<MeshEndpoint> | undefined, key?: string): Pick | undefined {
    const sets = this.sets;
    const last = sets.length - 1;
    for (let i = 0; i < last; i++) {
      const set = sets[i]!;
      if (set.healthy === 0) continue;
      const pick = set.pick(exclude, key);
      if (pick) return pick;
    }
    return sets[last]!.pick(exclude, key);
  }

  finished(pick: Pick, outcome: Outcome, error: ConnectError | undefined): void {
    // Any set reports to the endpoint's own health; its owner also rebuilds its picker.
    (this.owner(pick.endpoint) ?? this.sets[0]!).finished(pick, outcome, error);
  }

  series(endpoint: MeshEndpoint): EndpointSeries | undefined {
    return this.owner(endpoint)?.series(endpoint);
  }

  /** The index of the set `endpoint` belongs to, -1 when it left them all. */
  indexOf(endpoint: MeshEndpoint): number {
    for (let i = 0; i < this.sets.length; i++) if (this.sets[i]!.has(endpoint)) return i;
    return -1;
  }

  private owner(endpoint: MeshEndpoint): EndpointSet | undefined {
    const index = this.indexOf(endpoint);
    return index < 0 ? undefined : this.sets[index];
  }
}
