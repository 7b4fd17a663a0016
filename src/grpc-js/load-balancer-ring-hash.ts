import type * as grpc from "@grpc/grpc-js";
import { ringHashBalancer } from "../client/balancing/ring-hash.js";
import type { HashPolicySpec } from "../client/routing/compile.js";
import { hashKeyOf } from "../client/routing/hash-key.js";
import { parseInstances, registerMeshBalancerPolicy, type MeshBalancerConfigJson } from "./load-balancer-mesh-balancer.js";

/** The policy's name in a service config: `{ "meshkit_ring_hash": { "hash": [{ "header": "x-user" }] } }`. */
export const ringHashPolicyName = "meshkit_ring_hash";

/**
 * The config of `meshkit_ring_hash`: `instances` (Consul's ids place the ring's points, so that
 * grpc-js channels and mesh clients send one key to the same instance), `hash` (Consul's
 * `HashPolicies` that a gRPC call can carry: `{ header }` names a request header, lower case;
 * `{ constant }` stands for `SourceIP`, this client's host; `terminal` as Consul's `Terminal`)
 * and `maxRingSize` (Consul's `RingHashConfig.MaximumRingSize`).
 */
export interface RingHashConfigJson extends MeshBalancerConfigJson {
  hash: HashPolicySpec[];
  maxRingSize?: number;
}

function parse(json: Record<string, unknown>): RingHashConfigJson {
  const hash = json.hash ?? [];
  if (!Array.isArray(hash)) throw new Error(`${ringHashPolicyName}: "hash" is not a list`);
  const policies = hash.map((entry: unknown, index): HashPolicySpec => {
    const { header, constant, terminal } = (entry ?? {}) as Record<string, unknown>;
    if ((typeof header === "string") === (typeof constant === "string")) throw new Error(`${ringHashPolicyName}: hash[${index}] names neither a header nor a constant, or both`);
    return { header: typeof header === "string" ? header.toLowerCase() : undefined, constant: typeof constant === "string" ? constant : undefined, terminal: terminal === true };
  });
  const maxRingSize = json.maxRingSize;
  if (maxRingSize !== undefined && !(typeof maxRingSize === "number" && maxRingSize >= 1)) throw new Error(`${ringHashPolicyName}: "maxRingSize" is not a positive number`);
  return { ...parseInstances(json, ringHashPolicyName), hash: policies, ...(maxRingSize !== undefined ? { maxRingSize } : {}) };
}

/** A request header's value in grpc-js metadata; several values joined with ", ", as `Headers.get` joins them for the mesh client. */
function readMetadata(metadata: grpc.Metadata, name: string): string | undefined {
  const values = metadata.get(name);
  if (values.length === 0) return undefined;
  if (values.length === 1) return typeof values[0] === "string" ? values[0] : undefined;
  const texts = values.filter((value): value is string => typeof value === "string");
  return texts.length ? texts.join(", ") : undefined;
}

/**
 * registerRingHashBalancer registers `meshkit_ring_hash` with grpc-js: the mesh client's ring
 * (src/client/balancing/ring-hash.ts, 128 points per unit of weight) over the READY endpoints,
 * keyed by the call's metadata, which grpc-js hands each pick (`PickArgs.metadata`: the call's
 * request metadata). A call without any of the headers goes to a random endpoint, as in Envoy.
 * It stands for Consul's `ring_hash` and `maglev` policies, as in the mesh client. Unlike gRFC
 * A42's ring_hash (which hashes an xDS-computed request hash), the key is read per pick, so no
 * config selector is needed. Safe to call more than once.
 */
export function registerRingHashBalancer(): void {
  registerMeshBalancerPolicy<RingHashConfigJson>({
    name: ringHashPolicyName,
    parse,
    balancer: (config) => ringHashBalancer(config.maxRingSize !== undefined ? { maxRingSize: config.maxRingSize } : {}),
    hashKey: (config, pickArgs) => hashKeyOf(config.hash, pickArgs.metadata, readMetadata),
    readsLoad: false,
  });
}
