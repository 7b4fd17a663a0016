import { hostname } from "node:os";
import type { HashPolicySpec } from "./compile.js";

/** The value every call shares for a `SourceIP` hash policy: this client's host, as a sidecar sees its one app. */
export const sourceAddress = hostname();

/**
 * hashKeyOf is a call's key for `ring_hash` under Consul's `HashPolicies`, in their order: each
 * header policy adds the call's value of that header (none when the call lacks it), `SourceIP`
 * adds this client's host; several values are joined with a newline, and a `Terminal` policy
 * that found a value ends the list. Undefined when no policy found one: the call then goes to a
 * random endpoint, as in Envoy.
 *
 * Shared by the mesh client (headers of a Connect call) and meshkit/grpc-js's ring-hash policy
 * (grpc-js metadata), so that both send one key to the same instance. `read` takes the source
 * as an argument rather than closing over it, so a call allocates no function.
 */
export function hashKeyOf<Source>(policies: readonly HashPolicySpec[], source: Source, read: (source: Source, header: string) => string | undefined): string | undefined {
  let key: string | undefined;
  for (let i = 0; i < policies.length; i++) {
    const policy = policies[i]!;
    const value = policy.header !== undefined ? read(source, policy.header) : sourceAddress;
    if (value === undefined) continue;
    key = key === undefined ? value : `${key}\n${value}`;
    if (policy.terminal) break;
  }
  return key;
}
