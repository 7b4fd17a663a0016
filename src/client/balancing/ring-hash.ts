import { emptyPicker, type Balancer, type Endpoint, type Picker, weightOf } from "./balancer.js";

/** RingHashOptions size the ring (Consul's `RingHashConfig.MaximumRingSize`). */
export interface RingHashOptions {
  /** Points per unit of Consul weight. Default 128. */
  pointsPerWeight?: number;
  /** Most points on the ring; fewer per weight when the weights add up to more. Default 8 388 608 (Envoy's). */
  maxRingSize?: number;
}

/**
 * ringHashBalancer ("ring_hash") is consistent hashing (Karger et al. 1997, Envoy's
 * `RING_HASH`): each endpoint owns points on a 32-bit ring, placed by hashing its instance id, and
 * a call whose hash key (a request header named by Consul's `HashPolicies`, see
 * routing/hash-key.ts) lands on the ring goes to the endpoint owning the next point. So one key
 * keeps landing on one instance while the set is stable, and when an instance joins or leaves
 * only the keys next to its points move: about 1/N of them.
 *
 * Points per endpoint are fixed per unit of weight (`pointsPerWeight`, 128), not rescaled to the
 * set's size as Envoy does to reach its `MinimumRingSize`: a set that grows from 3 to 4
 * instances keeps every old point, which is what bounds the move to the new instance's share
 * (rescaled, 3 instances' 342 points each would shrink to 256 and move many more keys). 128
 * points give each instance its share within about 10%. Points are placed from the instance id, the same in every client, so
 * every client sends one key to the same instance.
 *
 * A call with no key goes to a random endpoint, as Envoy does. A retry passes over endpoints this
 * call already tried, walking on along the ring.
 */
export function ringHashBalancer(options: RingHashOptions = {}, random: () => number = Math.random): Balancer {
  const pointsPerWeight = Math.max(1, options.pointsPerWeight ?? 128);
  const maxRingSize = Math.max(1, options.maxRingSize ?? 8_388_608);
  return {
    name: "ring_hash",
    picker(endpoints) {
      if (endpoints.length === 0) return emptyPicker;
      return ringPicker(endpoints, pointsPerWeight, maxRingSize, random);
    },
  };
}

function ringPicker(endpoints: readonly Endpoint[], pointsPerWeight: number, maxRingSize: number, random: () => number): Picker {
  const weights = endpoints.map((endpoint) => Math.max(0, weightOf(endpoint)));
  const totalWeight = weights.reduce((sum, weight) => sum + weight, 0) || endpoints.length;
  let perWeight = pointsPerWeight;
  if (perWeight * totalWeight > maxRingSize) perWeight = Math.max(1, Math.floor(maxRingSize / totalWeight));
  const points: { hash: number; index: number }[] = [];
  endpoints.forEach((endpoint, index) => {
    const count = Math.max(1, Math.round(perWeight * (weights[index] || 1)));
    const id = endpoint.instance.id;
    for (let replica = 0; replica < count; replica++) points.push({ hash: hashString(`${id}_${replica}`), index });
  });
  // Ties (rare) are ordered by instance id, so every client builds the same ring.
  points.sort((a, b) => a.hash - b.hash || (endpoints[a.index]!.instance.id < endpoints[b.index]!.instance.id ? -1 : 1));
  const hashes = new Uint32Array(points.length);
  const owners = new Uint32Array(points.length);
  points.forEach((point, i) => {
    hashes[i] = point.hash;
    owners[i] = point.index;
  });
  const size = hashes.length;
  const n = endpoints.length;
  return {
    pick(exclude, key) {
      if (key === undefined) {
        const start = Math.floor(random() * n);
        for (let offset = 0; offset < n; offset++) {
          const candidate = endpoints[(start + offset) % n]!;
          if (exclude === undefined || !exclude.has(candidate)) return candidate;
        }
        return undefined;
      }
      let at = firstAtOrAfter(hashes, hashString(key));
      if (at === size) at = 0;
      const chosen = endpoints[owners[at]!]!;
      if (exclude === undefined || !exclude.has(chosen)) return chosen;
      // Walk on along the ring to the next endpoint not tried; at most one lap.
      for (let step = 1; step < size; step++) {
        const candidate = endpoints[owners[(at + step) % size]!]!;
        if (!exclude.has(candidate)) return candidate;
      }
      return undefined;
    },
  };
}

/** The index of the first ring point whose hash is >= `hash` (size when none is). */
function firstAtOrAfter(hashes: Uint32Array, hash: number): number {
  let low = 0;
  let high = hashes.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (hashes[middle]! < hash) low = middle + 1;
    else high = middle;
  }
  return low;
}

/**
 * hashString is MurmurHash3's 32-bit finalizer over FNV-1a of the string's UTF-16 code units: FNV
 * alone spreads similar strings ("a_1", "a_2") badly over the ring; the finalizer's avalanche
 * fixes that, at a few nanoseconds for a short key, with no allocation.
 */
export function hashString(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  hash ^= hash >>> 16;
  hash = Math.imul(hash, 0x85ebca6b);
  hash ^= hash >>> 13;
  hash = Math.imul(hash, 0xc2b2ae35);
  hash ^= hash >>> 16;
  return hash >>> 0;
}

