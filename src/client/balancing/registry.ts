import type { Balancer, BalancerFactory } from "./balancer.js";
import { leastOutstandingBalancer } from "./least-outstanding.js";
import { peakEwmaBalancer } from "./peak-ewma.js";
import { randomBalancer } from "./random.js";
import { ringHashBalancer } from "./ring-hash.js";
import { roundRobinBalancer } from "./round-robin.js";

/** The built-in balancers, by the names Consul's service-resolver `LoadBalancer.Policy` and users give. */
const builtIn: Record<string, BalancerFactory> = {
  round_robin: roundRobinBalancer,
  random: () => randomBalancer(),
  least_outstanding: () => leastOutstandingBalancer(),
  peak_ewma: () => peakEwmaBalancer(),
  ring_hash: () => ringHashBalancer(),
};

const factories = new Map<string, BalancerFactory>(Object.entries(builtIn));

/**
 * registerBalancer makes a balancer available by name, beside the built-in ones. A later
 * registration replaces an earlier. Returns a function that removes this registration again
 * (and restores none it replaced), for tests and plug-ins that must not leave a global behind.
 *
 * ```ts
 * registerBalancer("first", () => ({ name: "first", picker: (endpoints) => ({ pick: () => endpoints[0] }) }));
 * createMeshTransport({ service: "echo", balancer: "first", ... });
 * ```
 */
export function registerBalancer(name: string, factory: BalancerFactory): () => void {
  factories.set(name, factory);
  return () => {
    if (factories.get(name) === factory) factories.delete(name);
  };
}

/** createBalancer makes the balancer registered as `name`; it throws naming the known ones. */
export function createBalancer(name: string): Balancer {
  const factory = factories.get(name);
  if (!factory) throw new Error(`unknown balancer "${name}"; registered: ${[...factories.keys()].join(", ")}`);
  return factory();
}

/** The names registered so far. */
export function balancerNames(): string[] {
  return [...factories.keys()];
}
