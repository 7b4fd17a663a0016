import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { Counter, Gauge, register as defaultRegistry, type Registry } from "prom-client";
import type { Logger } from "../../platform/log.js";
import type { MeshIdentity } from "../../platform/mesh/identity.js";
import type { DenyReason } from "../../platform/mesh/intentions.js";
import type { IntentionsWatch } from "../../platform/mesh/intentions-watch.js";
import { callConnectionKey, type CallConnection } from "../call-connection.js";
import { meshPeerOf, type UnauthenticatedReason } from "./peer.js";

/** MeshAuthorizationOptions configure `meshAuthorization`. */
export interface MeshAuthorizationOptions {
  /** This service's own identity: its trust domain is the one callers must carry. */
  identity: MeshIdentity;
  /** The intentions whose destination is this service. */
  intentions: IntentionsWatch;
  /** Where the denial counter and staleness gauge are registered. Default prom-client's registry. */
  metrics?: Registry;
  /** Denials are logged at most once per source and reason per `logIntervalMs` (default 60 000). */
  log?: Logger;
  logIntervalMs?: number;
}

/** The services a caller without a mesh certificate may still reach: Consul's own health check has no leaf. */
const openServices = new Set(["grpc.health.v1.Health"]);

/** What the mesh knows of a request it decides: its connection, gRPC path, HTTP method and headers. */
export interface MeshRequest {
  connection: CallConnection | undefined;
  path: string;
  method: string;
  header: (name: string) => string | undefined;
}

/**
 * MeshAuthorizer decides requests by Consul's intentions: `interceptor` for the calls a service
 * serves, `refusal` for what the host answers itself (a method it does not serve), so that a
 * caller the intentions deny learns no more of the service than one they allow would of a
 * method: PERMISSION_DENIED either way, not UNIMPLEMENTED.
 */
export interface MeshAuthorizer {
  interceptor: Interceptor;
  /** The refusal of `request` (counted and logged as a call's), or undefined when it may go on. */
  refusal(request: MeshRequest): ConnectError | undefined;
}

/**
 * meshAuthorizer decides every call by Consul's intentions, locally: the caller's service is
 * the SPIFFE ID of its client certificate (peer.ts), the call's gRPC path
 * (`/<package>.<Service>/<Method>`), HTTP method and metadata are what L7 permissions match.
 * The policy is read per call from the watch, so a changed intention applies to connections
 * already open, at their next call.
 *
 * A caller without a valid mesh certificate gets UNAUTHENTICATED (saying which check failed),
 * except for grpc.health.v1; a caller the intentions deny gets PERMISSION_DENIED naming the two
 * services and nothing else. Both count in `meshkit_server_intention_denials_total{source,reason}`
 * (source "" when unauthenticated) and are logged once per source and reason per minute.
 */
export function meshAuthorizer(options: MeshAuthorizationOptions): MeshAuthorizer {
  const registry = options.metrics ?? defaultRegistry;
  const denials = denialCounter(registry);
  registerStalenessGauge(registry, options);
  const destination = options.identity.service;
  const logIntervalMs = options.logIntervalMs ?? 60_000;
  const lastLogged = new Map<string, number>();
  const refuse = (source: string, reason: DenyReason | UnauthenticatedReason | "not_ready", code: Code, message: string): ConnectError => {
    denials.inc({ source, reason });
    const key = `${source}\u0000${reason}`;
    const now = performance.now();
    if (options.log && now - (lastLogged.get(key) ?? -Infinity) >= logIntervalMs) {
      // Bounded: sources are mesh services (or ""), reasons a fixed set; forget all past a cap.
      if (lastLogged.size >= 10_000) lastLogged.clear();
      lastLogged.set(key, now);
      options.log.warn({ source, destination, reason }, `mesh call refused: ${message} (logged once a minute per source and reason)`);
    }
    return new ConnectError(message, code);
  };
  const refusal = (request: MeshRequest): ConnectError | undefined => {
    const material = options.identity.current();
    const policy = options.intentions.policy();
    if (!material || !policy) return refuse("", "not_ready", Code.Unavailable, `${destination} has not yet read its mesh identity and intentions from Consul`);
    const peer = meshPeerOf(request.connection, material.trustDomain);
    if (!peer.id) return refuse("", peer.reason, Code.Unauthenticated, `${peer.detail}`);
    const source = peer.id.service;
    const decision = policy.decide({ source, sourceNamespace: peer.id.namespace, path: request.path, method: request.method, header: request.header });
    if (!decision.allowed) return refuse(source, decision.reason, Code.PermissionDenied, `"${source}" may not call "${destination}": denied by the mesh's intentions`);
    return undefined;
  };

  return {
    interceptor: (next) => (request) => {
      if (openServices.has(request.service.typeName)) return next(request);
      const refused = refusal({
        connection: request.contextValues.get(callConnectionKey),
        path: `/${request.service.typeName}/${request.method.name}`,
        method: request.requestMethod,
        header: (name) => request.header.get(name) ?? undefined,
      });
      if (refused) throw refused;
      return next(request);
    },
    refusal,
  };
}

/** meshAuthorization is `meshAuthorizer(options).interceptor`: the calls a service serves, decided by intentions. */
export function meshAuthorization(options: MeshAuthorizationOptions): Interceptor {
  return meshAuthorizer(options).interceptor;
}

const counters = new WeakMap<Registry, Counter<"source" | "reason">>();

function denialCounter(registry: Registry): Counter<"source" | "reason"> {
  let counter = counters.get(registry);
  if (!counter) {
    counter = new Counter({
      name: "meshkit_server_intention_denials_total",
      help: "Calls refused by the mesh: PERMISSION_DENIED by intentions, UNAUTHENTICATED without a valid mesh certificate; by source service and reason.",
      labelNames: ["source", "reason"],
      registers: [registry],
    });
    counters.set(registry, counter);
  }
  return counter;
}

const gauges = new WeakMap<Registry, Set<MeshAuthorizationOptions>>();

/** How old the policy in force is: it keeps applying while Consul is out of reach (fail static). */
function registerStalenessGauge(registry: Registry, options: MeshAuthorizationOptions): void {
  let sources = gauges.get(registry);
  if (sources) {
    sources.add(options);
    return;
  }
  gauges.set(registry, (sources = new Set([options])));
  const watched = sources;
  new Gauge({
    name: "meshkit_mesh_policy_staleness_seconds",
    help: "Seconds since Consul last answered the watch of this service's mesh identity (leaf and roots) or intentions; they keep applying meanwhile.",
    labelNames: ["service", "kind"],
    registers: [registry],
    collect() {
      this.reset();
      for (const { identity, intentions } of watched) {
        const seconds = (ms: number) => (Number.isFinite(ms) ? ms / 1000 : -1);
        this.set({ service: identity.service, kind: "identity" }, seconds(identity.stalenessMs()));
        this.set({ service: identity.service, kind: "intentions" }, seconds(intentions.stalenessMs()));
      }
    },
  });
}
