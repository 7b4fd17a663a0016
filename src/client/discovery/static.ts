import type { Instance } from "./instance.js";
import type { Resolver } from "./resolver.js";

/**
 * staticResolver serves a fixed instance list: for tests, for a service outside Consul, or for
 * a developer pointing a client at one local process.
 *
 * ```ts
 * createMeshTransport({ service: "echo", resolver: staticResolver([{ address: "127.0.0.1", port: 50051 }]) });
 * ```
 */
export function staticResolver(instances: readonly (Partial<Instance> & { address: string; port: number })[]): Resolver {
  const list: Instance[] = instances.map((instance, index) => ({
    id: instance.id ?? `${instance.address}:${instance.port}#${index}`,
    address: instance.address,
    port: instance.port,
    weight: instance.weight ?? 1,
    tags: instance.tags ?? [],
    meta: instance.meta ?? {},
  }));
  return {
    instances: list,
    resolved: true,
    lastError: undefined,
    whenResolved: () => Promise.resolve(),
    subscribe: () => () => undefined,
    stalenessMs: () => 0,
    close: () => undefined,
  };
}
