import * as grpc from "@grpc/grpc-js";
import { peakEwmaBalancer } from "../client/balancing/peak-ewma.js";
import type { Endpoint as MeshEndpoint } from "../client/balancing/balancer.js";
import { MutableEndpointLoad } from "../client/balancing/endpoint-load.js";
import { assertSupportedGrpcJs } from "./grpc-js-version.js";

type LoadBalancer = grpc.experimental.LoadBalancer;
type ChannelControlHelper = grpc.experimental.ChannelControlHelper;
type GrpcEndpoint = grpc.experimental.Endpoint;
type Picker = grpc.experimental.Picker;
type PickArgs = grpc.experimental.PickArgs;
type PickResult = grpc.experimental.PickResult;
const State = grpc.connectivityState;

/** The policy's name in a service config: `{ "loadBalancingConfig": [{ "meshkit_peak_ewma": {} }] }`. */
export const peakEwmaPolicyName = "meshkit_peak_ewma";

class PeakEwmaConfig implements grpc.experimental.TypedLoadBalancingConfig {
  getLoadBalancerName(): string {
    return peakEwmaPolicyName;
  }
  toJsonObject(): object {
    return { [peakEwmaPolicyName]: {} };
  }
  static createFromJson(): PeakEwmaConfig {
    return new PeakEwmaConfig();
  }
}

/** A connected endpoint as the mesh client's balancers see it, with the grpc-js picker of its connection. */
interface ReadyEndpoint extends MeshEndpoint {
  readonly load: MutableEndpointLoad;
  readonly picker: Picker;
}

/**
 * The mesh client's peak-EWMA picker over the READY endpoints: two random endpoints, the one
 * with the lower latency x (outstanding + 1) wins (src/client/balancing/peak-ewma.ts). Each pick
 * counts the call in flight on its endpoint and folds its latency in when it ends. Immutable: a
 * new one replaces it whenever an endpoint connects or disconnects (grpc-js's picker contract).
 */
class PeakEwmaPicker implements Picker {
  readonly #picker;
  constructor(private readonly endpoints: readonly ReadyEndpoint[]) {
    this.#picker = peakEwmaBalancer().picker(endpoints);
  }
  pick(pickArgs: PickArgs): PickResult {
    const endpoint = (this.#picker.pick() ?? this.endpoints[0]!) as ReadyEndpoint;
    const result = endpoint.picker.pick(pickArgs);
    if (result.pickResultType !== grpc.experimental.PickResultType.COMPLETE) return result;
    const { onCallStarted, onCallEnded } = result as PickResult & { onCallStarted: (() => void) | null; onCallEnded: grpc.experimental.PickResult["onCallEnded"] };
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
    } as PickResult;
  }
}

/**
 * PeakEwmaLoadBalancer keeps one pick_first leaf per endpoint connected (as round_robin does)
 * and picks among the READY ones with `PeakEwmaPicker`. The load of an endpoint (calls in flight,
 * latency estimate) outlives a new address list that still holds it.
 */
class PeakEwmaLoadBalancer implements LoadBalancer {
  #children: grpc.experimental.LeafLoadBalancer[] = [];
  #loads = new Map<string, MutableEndpointLoad>();
  #updatesPaused = false;
  #lastError: string | null = null;
  /** Why there is no endpoint: the message calls fail with while the list is empty. */
  #noEndpoints = `${peakEwmaPolicyName}: no addresses resolved yet`;
  readonly #childHelper: ChannelControlHelper;

  constructor(private readonly helper: ChannelControlHelper) {
    this.#childHelper = grpc.experimental.createChildChannelControlHelper(helper, {
      updateState: (_state, _picker, errorMessage) => {
        if (errorMessage) this.#lastError = errorMessage;
        this.#update();
      },
    });
  }

  updateAddressList(endpointList: grpc.experimental.StatusOr<GrpcEndpoint[]>, _config: grpc.experimental.TypedLoadBalancingConfig, options: grpc.ChannelOptions, resolutionNote: string): boolean {
    if (!endpointList.ok) {
      // A resolver error with endpoints known: keep serving them (as round_robin does).
      if (this.#children.length === 0) this.helper.updateState(State.TRANSIENT_FAILURE, new grpc.experimental.UnavailablePicker(endpointList.error), endpointList.error.details);
      return true;
    }
    for (const child of this.#children) child.destroy();
    const keys = new Set(endpointList.value.map((endpoint) => grpc.experimental.endpointToString(endpoint)));
    for (const key of this.#loads.keys()) if (!keys.has(key)) this.#loads.delete(key);
    if (endpointList.value.length === 0) {
      // Unlike grpc-js 1.14's round_robin, which settles in IDLE here: fail calls fast.
      this.#children = [];
      this.#noEndpoints = `${peakEwmaPolicyName}: no addresses resolved. Resolution note: ${resolutionNote}`;
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

  #loadOf(endpoint: GrpcEndpoint): MutableEndpointLoad {
    const key = grpc.experimental.endpointToString(endpoint);
    let load = this.#loads.get(key);
    if (!load) this.#loads.set(key, (load = new MutableEndpointLoad()));
    return load;
  }

  #update(): void {
    if (this.#updatesPaused) return;
    if (this.#children.length === 0) {
      // Also when a connection of a list already dropped reports late: no endpoint, fail fast.
      this.helper.updateState(State.TRANSIENT_FAILURE, new grpc.experimental.UnavailablePicker({ details: this.#noEndpoints }), this.#noEndpoints);
      return;
    }
    const ready = this.#children.filter((child) => child.getConnectivityState() === State.READY);
    if (ready.length) {
      const endpoints = ready.map((child, index): ReadyEndpoint => {
        const endpoint = child.getEndpoint();
        const address = endpoint.addresses[0];
        const [host, port] = address && "host" in address ? [address.host, address.port] : [grpc.experimental.endpointToString(endpoint), 0];
        return { instance: { id: `${index}:${host}:${port}`, address: host, port, weight: 1, tags: [], meta: {} }, load: this.#loadOf(endpoint), picker: child.getPicker() };
      });
      this.helper.updateState(State.READY, new PeakEwmaPicker(endpoints), null);
    } else if (this.#children.some((child) => child.getConnectivityState() === State.CONNECTING)) {
      this.helper.updateState(State.CONNECTING, new grpc.experimental.QueuePicker(this), null);
    } else if (this.#children.some((child) => child.getConnectivityState() === State.TRANSIENT_FAILURE)) {
      const message = `${peakEwmaPolicyName}: no connection established. Last error: ${this.#lastError}`;
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
    return peakEwmaPolicyName;
  }
}

/**
 * registerPeakEwmaBalancer registers the `meshkit_peak_ewma` load-balancing policy with grpc-js:
 * the mesh client's peak-EWMA picker (power of two choices on latency x calls in flight) for
 * grpc-js channels. Safe to call more than once. `recommendedServiceConfig({ balancer:
 * "meshkit_peak_ewma" })` calls it: a service config naming an unregistered policy would make
 * grpc-js fall back to pick_first without a word. Throws on a @grpc/grpc-js outside `~1.14.7`.
 */
export function registerPeakEwmaBalancer(): void {
  assertSupportedGrpcJs();
  if (grpc.experimental.isLoadBalancerNameRegistered(peakEwmaPolicyName)) return;
  grpc.experimental.registerLoadBalancerType(peakEwmaPolicyName, PeakEwmaLoadBalancer, PeakEwmaConfig);
}
