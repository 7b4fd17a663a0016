/**
 * Instance is one reachable copy of a service, as discovery reports it. Immutable: a changed
 * instance arrives as a new object in a new set.
 */
export interface Instance {
  /** Unique id (Consul's service id). */
  readonly id: string;
  readonly address: string;
  readonly port: number;
  /** Relative share of traffic (Consul's `Weights.Passing`); 1 when unset. */
  readonly weight: number;
  readonly tags: readonly string[];
  readonly meta: Readonly<Record<string, string>>;
}

/** A stable text for comparing instance sets: equal sets give equal keys whatever their order. */
export function instanceSetKey(instances: readonly Instance[]): string {
  return instances
    .map((i) => `${i.id}|${i.address}|${i.port}|${i.weight}|${i.tags.join(",")}|${JSON.stringify(i.meta)}`)
    .sort()
    .join("\n");
}
