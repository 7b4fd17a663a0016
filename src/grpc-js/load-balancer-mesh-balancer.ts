import * as grpc from "@grpc/grpc-js";
import type { Balancer, Endpoint as MeshEndpoint, Picker as MeshPicker } from "../client/balancing/balancer.js";
import { MutableEndpointLoad } from "../client/balancing/endpoint-load.js";
import type { Instance } from "../client/discovery/instance.js";
import { assertSupportedGrpcJs } from "./grpc-js-version.js";

type LoadBalancer = grpc.experimental.LoadBalancer;
type ChannelControlHelper = grpc.experimental.ChannelControlHelper;
type GrpcEndpoint = grpc.experimental.Endpoint;
type Picker = grpc.experimental.Picker;
type PickArgs = grpc.experimental.PickArgs;
type PickResult = grpc.experimental.PickResult;
const State = grpc.connectivityState;

/** What Consul says of one instance, for balancers that read it: its id (the ring's points) and weight. */
export interface InstanceInfo {
  id: string;
  weight: number;
}

/**
 * The JSON config every meshkit policy of this kind takes (under its name in a service config's
 * `loadBalancingConfig`); all fields optional, so `{ "meshkit_random": {} }` is valid:
 * - `instances`: by address (`host:port`, `[v6]:port`), Consul's id and weight of each instance.
 *   Without it an endpoint's id is its address and its weight 1.
 * The ring-hash policy adds `hash` and `maxRingSize` (load-balancer-ring-hash.ts).
 */
export interface MeshBalancerConfigJson {
  instances?: Record<string, InstanceInfo>;
  [field: string]: unknown;
}

/** A meshkit policy that runs one of the mesh client's balancers (src/client/balancing/) in grpc-js. */
export interface MeshBalancerPolicy<Config extends MeshBalancerConfigJson> {
  /** Its name in a service config, `meshkit_<...>`. */
  readonly name: string;
  /** Checks and completes the JSON config; throws naming what is wrong. */
  parse(json: Record<string, unknown>): Config;
  /** The balancer for a config, made again when the channel sends another config. */
  balancer(config: Config): Balancer;
  /** The call's key for consistent hashing; absent for balancers that take none. */
  hashKey?(config: Config, pickArgs: PickArgs): string | undefined;
  /** Whether its balancer reads endpoint load (calls in flight, latency): only then is load counted. */
  readonly readsLoad: boolean;
}

/** A READY endpoint as the mesh client's balancers see it, with the grpc-js picker of its connection. */
interface ReadyEndpoint extends MeshEndpoint {
  readonly load: MutableEndpointLoad;
  readonly picker: Picker;
}

/** The address key an endpoint is known by in `instances`: its first address, as grpc-js writes it. */
export function addressKey(endpoint: GrpcEndpoint): string {
  const address = endpoint.addresses[0];
  return address ? grpc.experimental.subchannelAddressToString(address) : grpc.experimental.endpointToString(endpoint);
}

/** Parses the `instances` field shared by every meshkit balancer config: `{}` without it. */
export function parseInstances(json: Record<string, unknown>, policy: string): { instances?: Record<string, InstanceInfo> } {
  const instances = json.instances;
  if (instances === undefined) return {};
  if (instances === null || typeof instances !== "object" || Array.isArray(instances)) throw new Error(`${policy}: "instances" is not an object`);
  for (const [address, info] of Object.entries(instances as Record<string, unknown>)) {
    const { id, weight } = (info ?? {}) as Partial<InstanceInfo>;
    if (typeof id !== "string" || typeof weight !== "number" || !(weight > 0)) throw new Error(`${policy}: instance ${address} needs a string id and a positive weight`);
  }
  return { instances: instances as Record<string, InstanceInfo> };
}

/**
 * The mesh client's picker over the READY endpoints. Each pick asks the balancer's picker (with
 * the call's hash key, if the policy reads one), then the chosen connection's own picker; for
 * balancers that read load, it counts the call in flight on its endpoint and folds its latency
 * in when it ends. Immutable: a new one replaces it whenever an endpoint connects or
 * disconnects (grpc-js's picker contract).
 */
class MeshBalancerPicker<Config extends MeshBalancerConfigJson> implements Picker {
  readonly #picker: MeshPicker;
  constructor(
    private readonly endpoints: readonly ReadyEndpoint[],
    private readonly policy: MeshBalancerPolicy<Config>,
    private readonly config: Config,
    balancer: Balancer,
  ) {
    this.#picker = balancer.picker(endpoints);
  }

  pick(pickArgs: PickArgs): PickResult {
    const key = this.policy.hashKey?.(this.config, pickArgs);
    const endpoint = (this.#picker.pick(undefined, key) ?? this.endpoints[0]!) as ReadyEndpoint;
    const result = endpoint.picker.pick(pickArgs);
    if (!this.policy.readsLoad || result.pickResultType !== grpc.experimental.PickResultType.COMPLETE) return result;
    const { onCallStarted, onCallEnded } = result;
    let startedAt = 0;
    return {
      ...result,
      onCallStarted: () => {
        startedAt = performance.now();
        endpoint.load.started();
        onCallStarted?.();
      },
      onCallEnded: (code, details, metadata) => {
        const now = performance.now();
        endpoint.load.finished(now - startedAt, now);
        onCallEnded?.(code, details, metadata);
      },
    };
  }
}

/**
 * MeshBalancerLoadBalancer keeps one pick_first leaf per endpoint connected (as round_robin
 * does) and picks among the READY ones with `MeshBalancerPicker`. The load of an endpoint (calls
 * in flight, latency estimate) outlives a new address list that still holds it. An empty list
 * fails calls at once with the resolution note (grpc-js 1.14's round_robin settles in IDLE
 * instead, where calls wait for their deadline).
 */
class MeshBalancerLoadBalancer<Config extends MeshBalancerConfigJson> implements LoadBalancer {
  #children: grpc.experimental.LeafLoadBalancer[] = [];
  #loads = new Map<string, MutableEndpointLoad>();
  #config: Config | undefined;
  #balancer: Balancer | undefined;
  #updatesPaused = false;
  #lastError: string | null = null;
  /** Why there is no endpoint: the message calls fail with while the list is empty. */
  #noEndpoints: string;
  readonly #childHelper: ChannelControlHelper;

  constructor(
    private readonly policy: MeshBalancerPolicy<Config>,
    private readonly helper: ChannelControlHelper,
  ) {
    this.#noEndpoints = `${policy.name}: no addresses resolved yet`;
    this.#childHelper = grpc.experimental.createChildChannelControlHelper(helper, {
      updateState: (_state, _picker, errorMessage) => {
        if (errorMessage) this.#lastError = errorMessage;
        this.#update();
      },
    });
  }

  updateAddressList(endpointList: grpc.experimental.StatusOr<GrpcEndpoint[]>, config: grpc.experimental.TypedLoadBalancingConfig, options: grpc.ChannelOptions, resolutionNote: string): boolean {
    if (!endpointList.ok) {
      // A resolver error with endpoints known: keep serving them (as round_robin does).
      if (this.#children.length === 0) this.helper.updateState(State.TRANSIENT_FAILURE, new grpc.experimental.UnavailablePicker(endpointList.error), endpointList.error.details);
      return true;
    }
    this.#config = (config as MeshBalancerConfig<Config>).config;
    this.#balancer = this.policy.balancer(this.#config);
    for (const child of this.#children) child.destroy();
    const keys = new Set(endpointList.value.map(addressKey));
    for (const key of this.#loads.keys()) if (!keys.has(key)) this.#loads.delete(key);
    if (endpointList.value.length === 0) {
      this.#children = [];
      this.#noEndpoints = `${this.policy.name}: no addresses resolved. Resolution note: ${resolutionNote}`;
      this.#update();
      return true;
    }
    this.#updatesPaused = true;
    this.#children = endpointList.value.map((endpoint) => new grpc.experimental.LeafLoadBalancer(endpoint, this.#childHelper, options, resolutionNote));
    for (const child of this.#children) child.startConnecting();
    this.#updatesPaused = false;
    this.#update();
    return true;
  }

  #loadOf(key: string): MutableEndpointLoad {
    let load = this.#loads.get(key);
    if (!load) this.#loads.set(key, (load = new MutableEndpointLoad()));
    return load;
  }

  #update(): void {
    if (this.#updatesPaused) return;
    const name = this.policy.name;
    if (this.#children.length === 0) {
      // Also when a connection of a list already dropped reports late: no endpoint, fail fast.
      this.helper.updateState(State.TRANSIENT_FAILURE, new grpc.experimental.UnavailablePicker({ details: this.#noEndpoints }), this.#noEndpoints);
      return;
    }
    const ready = this.#children.filter((child) => child.getConnectivityState() === State.READY);
    if (ready.length) {
      const endpoints = ready.map((child): ReadyEndpoint => {
        const endpoint = child.getEndpoint();
        const key = addressKey(endpoint);
        return { instance: instanceOf(endpoint, key, this.#config?.instances?.[key]), load: this.#loadOf(key), picker: child.getPicker() };
      });
      this.helper.updateState(State.READY, new MeshBalancerPicker(endpoints, this.policy, this.#config!, this.#balancer!), null);
    } else if (this.#children.some((child) => child.getConnectivityState() === State.CONNECTING)) {
      this.helper.updateState(State.CONNECTING, new grpc.experimental.QueuePicker(this), null);
    } else if (this.#children.some((child) => child.getConnectivityState() === State.TRANSIENT_FAILURE)) {
      const message = `${name}: no connection established. Last error: ${this.#lastError}`;
      this.helper.updateState(State.TRANSIENT_FAILURE, new grpc.experimental.UnavailablePicker({ details: message }), message);
    } else {
      this.helper.updateState(State.IDLE, new grpc.experimental.QueuePicker(this), null);
    }
    // Keep every endpoint connected, as round_robin does: the picker needs a choice.
    for (const child of this.#children) if (child.getConnectivityState() === State.IDLE) child.exitIdle();
  }

  exitIdle(): void {
    for (const child of this.#children) child.exitIdle();
  }
  resetBackoff(): void {}
  destroy(): void {
    for (const child of this.#children) child.destroy();
    this.#children = [];
  }
  getTypeName(): string {
    return this.policy.name;
  }
}

/** An endpoint as a mesh client Instance: Consul's id and weight when the config gives them, else its address and 1. */
function instanceOf(endpoint: GrpcEndpoint, key: string, info: InstanceInfo | undefined): Instance {
  const address = endpoint.addresses[0];
  const [host, port] = address && "host" in address ? [address.host, address.port] : [key, 0];
  return { id: info?.id ?? key, address: host, port, weight: info?.weight ?? 1, tags: [], meta: {} };
}

/** The parsed config, as grpc-js hands it to the policy. */
interface MeshBalancerConfig<Config> extends grpc.experimental.TypedLoadBalancingConfig {
  readonly config: Config;
}

/**
 * registerMeshBalancerPolicy registers `policy` with grpc-js under its name (once: a second call
 * does nothing). Throws on a @grpc/grpc-js outside `~1.14.7`.
 */
export function registerMeshBalancerPolicy<Config extends MeshBalancerConfigJson>(policy: MeshBalancerPolicy<Config>): void {
  assertSupportedGrpcJs();
  if (grpc.experimental.isLoadBalancerNameRegistered(policy.name)) return;
  class Parsed implements MeshBalancerConfig<Config> {
    constructor(readonly config: Config) {}
    getLoadBalancerName(): string {
      return policy.name;
    }
    toJsonObject(): object {
      return { [policy.name]: this.config };
    }
    static createFromJson(json: unknown): Parsed {
      if (json === null || typeof json !== "object" || Array.isArray(json)) throw new Error(`${policy.name}: the config is not an object`);
      return new Parsed(policy.parse(json as Record<string, unknown>));
    }
  }
  class Policy extends MeshBalancerLoadBalancer<Config> {
    constructor(helper: ChannelControlHelper) {
      super(policy, helper);
    }
  }
  grpc.experimental.registerLoadBalancerType(policy.name, Policy, Parsed);
}
