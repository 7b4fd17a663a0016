import type { MeshIdentity } from "../../platform/mesh/identity.js";
import type { Resolver } from "./resolver.js";

/**
 * gateOnIdentity makes a resolver count as resolved only once the mesh identity is known too:
 * the transport's calls already wait for resolution (up to their deadline), and a connection
 * made before the leaf arrived would present no certificate and be refused.
 */
export function gateOnIdentity(resolver: Resolver, identity: MeshIdentity): Resolver {
  return {
    get instances() {
      return resolver.instances;
    },
    get resolved() {
      return resolver.resolved && identity.current() !== undefined;
    },
    async whenResolved(signal) {
      await Promise.all([resolver.whenResolved(signal), identity.ready(signal)]);
    },
    subscribe: (listener) => resolver.subscribe(listener),
    stalenessMs: () => Math.max(resolver.stalenessMs(), identity.stalenessMs()),
    get lastError() {
      return resolver.lastError ?? (identity.current() ? undefined : identity.lastError);
    },
    close: () => resolver.close(),
  };
}
