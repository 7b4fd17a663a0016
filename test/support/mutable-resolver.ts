import type { Instance } from "../../src/client/discovery/instance.js";
import type { Resolver } from "../../src/client/discovery/resolver.js";

/** A Resolver whose instance set the test changes by hand (the real servers stay real). */
export interface MutableResolver extends Resolver {
  set(instances: readonly { id: string; port: number; weight?: number }[]): void;
  readonly closed: boolean;
}

export function mutableResolver(initial: readonly { id: string; port: number; weight?: number }[] = []): MutableResolver {
  const listeners = new Set<(instances: readonly Instance[]) => void>();
  let instances: readonly Instance[] = [];
  let closed = false;
  const toInstances = (list: readonly { id: string; port: number; weight?: number }[]) =>
    list.map((i) => ({ id: i.id, address: "127.0.0.1", port: i.port, weight: i.weight ?? 1, tags: [], meta: {} }));
  instances = toInstances(initial);
  return {
    get instances() {
      return instances;
    },
    resolved: true,
    lastError: undefined,
    whenResolved: () => Promise.resolve(),
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    stalenessMs: () => 0,
    close() {
      closed = true;
    },
    get closed() {
      return closed;
    },
    set(list) {
      instances = toInstances(list);
      for (const listener of listeners) listener(instances);
    },
  };
}
