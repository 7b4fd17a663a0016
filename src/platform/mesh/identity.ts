import type { ConsulClient } from "../consul.js";
import { startBlockingQuery, type BlockingQuery, type BlockingQueryOptions } from "../consul-blocking.js";
import { parseSpiffeServiceId, type SpiffeServiceId } from "./spiffe.js";

/** MeshMaterial is one service's TLS identity in Consul's mesh, as of the agent's last answers. */
export interface MeshMaterial {
  /** The leaf certificate (PEM; Consul appends intermediates when its CA has any). */
  certPem: string;
  keyPem: string;
  /** Every root in Consul's answer, with their intermediates: during a rotation old and new overlap. */
  caPems: string[];
  /** The mesh's trust domain (`<cluster id>.consul`), lower case. */
  trustDomain: string;
  /** This service's identity, from the leaf's `ServiceURI`. */
  identity: SpiffeServiceId;
  /** When the leaf expires; the agent renews it well before (at 60-90% of its life). */
  validBefore: Date;
}

/**
 * MeshIdentity keeps one service's leaf certificate and the CA roots current. Whoever uses the
 * material (the server host's TLS context, the mesh client's connections) reads `current()` at
 * each new connection or subscribes to changes; connections already open keep the certificate
 * they were made with, so a rotation drops no call in flight.
 */
export interface MeshIdentity {
  readonly service: string;
  /** The material, once both the leaf and the roots have been read; undefined before. */
  current(): MeshMaterial | undefined;
  /** Resolves with the material once it is known; rejects with `signal`'s reason. */
  ready(signal?: AbortSignal): Promise<MeshMaterial>;
  /** Calls `listener` on every new leaf or root set; returns the unsubscribe function. */
  subscribe(listener: (material: MeshMaterial) => void): () => void;
  /** Milliseconds since the older of the two watches last heard from the agent (Infinity before). */
  stalenessMs(): number;
  /** The last error of either watch, cleared by its next answer. */
  readonly lastError: Error | undefined;
  /** Releases this handle; the watches stop with the last handle of the same service. */
  close(): void;
}

/** MeshIdentityOptions: the service whose identity to hold, and the watches' timing. */
export interface MeshIdentityOptions extends BlockingQueryOptions {
  /** Consul service name: the leaf is issued for it (`/v1/agent/connect/ca/leaf/<service>`). */
  service: string;
}

interface LeafAnswer {
  CertPEM: string;
  PrivateKeyPEM: string;
  ServiceURI: string;
  ValidBefore: string;
}
interface RootsAnswer {
  TrustDomain: string;
  Roots: { RootCert: string; IntermediateCerts?: string[] | null; Active?: boolean }[] | null;
}

/**
 * meshIdentity watches a service's leaf certificate and Consul's CA roots through the local
 * agent, both as blocking queries, so a renewed leaf or a root rotation arrives within a round
 * trip of the agent having it. Every caller asking for the same service of the same Consul
 * client shares the two watches. While the agent is out of reach the last material keeps
 * applying (fail static) and `stalenessMs()` grows.
 *
 * The agent needs the service registered (or, with ACLs on, a token with `service:write` on it)
 * to issue its leaf.
 *
 * ```ts
 * const identity = meshIdentity(consul, { service: "orders" });
 * const { identity: id } = await identity.ready(); // id.uri: spiffe://<td>/ns/default/dc/dc1/svc/orders
 * ```
 */
export function meshIdentity(consul: ConsulClient, options: MeshIdentityOptions): MeshIdentity {
  let watches = shared.get(consul);
  if (!watches) shared.set(consul, (watches = new Map()));
  let watch = watches.get(options.service);
  if (!watch) {
    watch = new IdentityWatch(consul, options, () => watches.delete(options.service));
    watches.set(options.service, watch);
  }
  return watch.handle();
}

const shared = new WeakMap<ConsulClient, Map<string, IdentityWatch>>();

class IdentityWatch {
  #leaf: LeafAnswer | undefined;
  #roots: RootsAnswer | undefined;
  #material: MeshMaterial | undefined;
  #listeners = new Set<(material: MeshMaterial) => void>();
  #firstMaterial = Promise.withResolvers<MeshMaterial>();
  #queries: BlockingQuery[];
  #handles = 0;

  constructor(
    consul: ConsulClient,
    readonly options: MeshIdentityOptions,
    private readonly onStopped: () => void,
  ) {
    // The leaf endpoint answers 403/500 until the service exists or the token may write it: the
    // loop retries with backoff, and `lastError` says why meanwhile.
    this.#queries = [
      startBlockingQuery<LeafAnswer>(consul, { path: `/agent/connect/ca/leaf/${encodeURIComponent(options.service)}` }, ({ body }) => {
        if (this.#leaf?.CertPEM === body.CertPEM) return;
        this.#leaf = body;
        this.#update();
      }, options),
      startBlockingQuery<RootsAnswer>(consul, { path: "/agent/connect/ca/roots" }, ({ body }) => {
        if (this.#roots && JSON.stringify(this.#roots) === JSON.stringify(body)) return;
        this.#roots = body;
        this.#update();
      }, options),
    ];
  }

  handle(): MeshIdentity {
    this.#handles++;
    let closed = false;
    const lastError = () => this.lastError;
    return {
      service: this.options.service,
      current: () => this.#material,
      ready: (signal) => this.#ready(signal),
      subscribe: (listener) => {
        this.#listeners.add(listener);
        return () => this.#listeners.delete(listener);
      },
      stalenessMs: () => Math.max(...this.#queries.map((query) => query.stalenessMs())),
      get lastError() {
        return lastError();
      },
      close: () => {
        if (closed) return;
        closed = true;
        if (--this.#handles === 0) this.#stop();
      },
    };
  }

  get lastError(): Error | undefined {
    return this.#queries.find((query) => query.lastError)?.lastError;
  }

  #ready(signal?: AbortSignal): Promise<MeshMaterial> {
    if (this.#material) return Promise.resolve(this.#material);
    if (!signal) return this.#firstMaterial.promise;
    signal.throwIfAborted();
    return new Promise((resolve, reject) => {
      const onAbort = () => reject(signal.reason);
      signal.addEventListener("abort", onAbort, { once: true });
      void this.#firstMaterial.promise.then((material) => {
        signal.removeEventListener("abort", onAbort);
        resolve(material);
      });
    });
  }

  #update(): void {
    const leaf = this.#leaf;
    const roots = this.#roots;
    if (!leaf || !roots) return;
    const identity = parseSpiffeServiceId(leaf.ServiceURI);
    if (!identity) return; // not a service leaf: nothing this module can use (never seen from an agent)
    const material: MeshMaterial = {
      certPem: leaf.CertPEM,
      keyPem: leaf.PrivateKeyPEM,
      caPems: (roots.Roots ?? []).flatMap((root) => [root.RootCert, ...(root.IntermediateCerts ?? [])]),
      trustDomain: roots.TrustDomain.toLowerCase(),
      identity,
      validBefore: new Date(leaf.ValidBefore),
    };
    const first = !this.#material;
    this.#material = material;
    if (first) this.#firstMaterial.resolve(material);
    for (const listener of this.#listeners) listener(material);
  }

  #stop(): void {
    for (const query of this.#queries) query.close();
    this.#listeners.clear();
    this.onStopped();
  }
}
