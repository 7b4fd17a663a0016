import * as grpc from "@grpc/grpc-js";
import { addressKey } from "./load-balancer-mesh-balancer.js";
import { assertSupportedGrpcJs } from "./grpc-js-version.js";

type ChannelControlHelper = grpc.experimental.ChannelControlHelper;
type GrpcEndpoint = grpc.experimental.Endpoint;
type Picker = grpc.experimental.Picker;
type PickArgs = grpc.experimental.PickArgs;
type PickResult = grpc.experimental.PickResult;
type TypedLoadBalancingConfig = grpc.experimental.TypedLoadBalancingConfig;
type ConnectivityState = grpc.connectivityState;
const State = grpc.connectivityState;

/** The policy's name in a service config. */
export const weightedTargetPolicyName = "meshkit_weighted_target";

/**
 * The JSON config of `meshkit_weighted_target`, one entry per target of a split:
 *
 * ```json
 * { "meshkit_weighted_target": { "targets": {
 *   "v1.orders.default.default.dc1": { "weight": 90, "endpoints": ["10.0.0.1:8080"], "child_policy": [{ "round_robin": {} }] },
 *   "v2.orders.default.default.dc1": { "weight": 10, "endpoints": ["10.0.0.2:8080"], "child_policy": [{ "round_robin": {} }] } } } }
 * ```
 *
 * `endpoints` are addresses (`host:port`, `[v6]:port`) of the resolved endpoint list: the
 * channel gets every target's endpoints in one list (so that outlier detection above sees them
 * all), and this config says which belong to which target. gRPC's xDS `weighted_target` says it
 * with a locality path on each endpoint instead, which a resolver outside xDS cannot set.
 */
export interface WeightedTargetConfigJson {
  targets: Record<string, { weight: number; endpoints: string[]; child_policy: object[] }>;
}

interface TargetConfig {
  readonly weight: number;
  readonly endpoints: readonly string[];
  readonly childPolicy: TypedLoadBalancingConfig;
}

class WeightedTargetConfig implements TypedLoadBalancingConfig {
  constructor(
    readonly targets: ReadonlyMap<string, TargetConfig>,
    private readonly json: WeightedTargetConfigJson,
  ) {}
  getLoadBalancerName(): string {
    return weightedTargetPolicyName;
  }
  toJsonObject(): object {
    return { [weightedTargetPolicyName]: this.json };
  }
  static createFromJson(json: unknown): WeightedTargetConfig {
    const targetsJson = (json as Partial<WeightedTargetConfigJson> | null)?.targets;
    if (targetsJson === null || typeof targetsJson !== "object") throw new Error(`${weightedTargetPolicyName}: "targets" is not an object`);
    const targets = new Map<string, TargetConfig>();
    for (const [name, target] of Object.entries(targetsJson)) {
      const { weight, endpoints, child_policy: childPolicy } = (target ?? {}) as Partial<WeightedTargetConfigJson["targets"][string]>;
      if (typeof weight !== "number" || !(weight > 0)) throw new Error(`${weightedTargetPolicyName}: target ${name} needs a positive weight`);
      if (!Array.isArray(endpoints) || !endpoints.every((endpoint) => typeof endpoint === "string")) throw new Error(`${weightedTargetPolicyName}: target ${name} needs a list of endpoint addresses`);
      const parsed = Array.isArray(childPolicy) ? grpc.experimental.selectLbConfigFromList(childPolicy as Parameters<typeof grpc.experimental.selectLbConfigFromList>[0]) : null;
      if (!parsed) throw new Error(`${weightedTargetPolicyName}: target ${name} has no child_policy grpc-js knows`);
      targets.set(name, { weight, endpoints, childPolicy: parsed });
    }
    if (targets.size === 0) throw new Error(`${weightedTargetPolicyName}: no target`);
    return new WeightedTargetConfig(targets, json as WeightedTargetConfigJson);
  }
}

/**
 * WeightedTargetPicker draws one target per pick, in proportion to the weights, among the
 * targets it was given (the READY ones), and hands the pick to that target's own picker. A
 * linear scan of the cumulative weights: a split has a handful of targets.
 */
export class WeightedTargetPicker implements Picker {
  readonly #cumulative: Float64Array;
  readonly #total: number;

  constructor(
    private readonly targets: readonly { readonly picker: Picker; readonly weight: number }[],
    private readonly random: () => number = Math.random,
  ) {
    this.#cumulative = new Float64Array(targets.length);
    let sum = 0;
    targets.forEach((target, i) => (this.#cumulative[i] = sum += target.weight));
    this.#total = sum;
  }

  pick(pickArgs: PickArgs): PickResult {
    const draw = this.random() * this.#total;
    const last = this.targets.length - 1;
    let i = 0;
    while (i < last && draw >= this.#cumulative[i]!) i++;
    return this.targets[i]!.picker.pick(pickArgs);
  }
}

/** What the parent reads of one target: its child balancer's last state and picker, its weight, and whether it has endpoints at all. */
export interface TargetState {
  readonly name: string;
  readonly weight: number;
  readonly endpointCount: number;
  readonly state: ConnectivityState;
  readonly picker: Picker;
  readonly errorMessage: string | null;
}

/**
 * aggregateTargets is the split's state from its targets' (as gRPC's weighted_target): READY
 * when any target is READY, and then only READY targets share the calls, by weight (a target
 * with no connection up gets no share rather than failing its share); else CONNECTING, IDLE,
 * TRANSIENT_FAILURE in that order. A target without endpoints (no passing instance, nor on its
 * failover targets) is left out: it can take nothing until a new list brings some.
 * Undefined picker: the caller queues calls (CONNECTING, IDLE) or fails them (TRANSIENT_FAILURE).
 */
export function aggregateTargets(targets: Iterable<TargetState>, random: () => number = Math.random): { state: ConnectivityState; picker: Picker | undefined; errorMessage: string | null } {
  const ready: TargetState[] = [];
  let connecting = false;
  let idle = false;
  const errors: string[] = [];
  for (const target of targets) {
    if (target.endpointCount === 0) continue;
    if (target.state === State.READY) ready.push(target);
    else if (target.state === State.CONNECTING) connecting = true;
    else if (target.state === State.IDLE) idle = true;
    else if (target.state === State.TRANSIENT_FAILURE) errors.push(`${target.name}: ${target.errorMessage ?? "no connection"}`);
  }
  if (ready.length) return { state: State.READY, picker: new WeightedTargetPicker(ready, random), errorMessage: null };
  if (connecting) return { state: State.CONNECTING, picker: undefined, errorMessage: null };
  if (idle) return { state: State.IDLE, picker: undefined, errorMessage: null };
  return { state: State.TRANSIENT_FAILURE, picker: undefined, errorMessage: `${weightedTargetPolicyName}: no target has a connection (${errors.join("; ")})` };
}

/** One target: its own child balancer (the target's policy), fed the target's endpoints. */
class Target implements TargetState {
  state: ConnectivityState = State.IDLE;
  picker: Picker;
  errorMessage: string | null = null;
  weight = 0;
  endpointCount = 0;
  readonly balancer: grpc.experimental.ChildLoadBalancerHandler;

  constructor(
    readonly name: string,
    helper: ChannelControlHelper,
    onChange: () => void,
  ) {
    this.balancer = new grpc.experimental.ChildLoadBalancerHandler(
      grpc.experimental.createChildChannelControlHelper(helper, {
        updateState: (state, picker, errorMessage) => {
          this.state = state;
          this.picker = picker;
          this.errorMessage = errorMessage;
          // A pick_first child waits in IDLE after its connection dropped until asked: ask, so
          // the target can take its share again (round_robin children reconnect by themselves).
          if (state === State.IDLE && this.endpointCount > 0) this.balancer.exitIdle();
          onChange();
        },
      }),
    );
    this.picker = new grpc.experimental.QueuePicker(this.balancer);
  }
}

/**
 * WeightedTargetLoadBalancer carries a Consul service-splitter to a grpc-js channel: one child
 * balancer per target of the split (the target's resolver's policy, else the channel's own),
 * each fed the endpoints of its target, and a picker that draws a READY target per call by
 * weight (`aggregateTargets`). The resolver decides each target's endpoints, failover included
 * (chain-resolution.ts): a target whose instances all fail their checks in Consul gets its
 * failover target's instances, at list level.
 */
class WeightedTargetLoadBalancer implements grpc.experimental.LoadBalancer {
  readonly #targets = new Map<string, Target>();
  #updatesPaused = false;
  /** Set while no target has any endpoint: the message calls fail with. */
  #noEndpoints: string | undefined = `${weightedTargetPolicyName}: no addresses resolved yet`;

  constructor(private readonly helper: ChannelControlHelper) {}

  updateAddressList(endpointList: grpc.experimental.StatusOr<GrpcEndpoint[]>, config: TypedLoadBalancingConfig, options: grpc.ChannelOptions, resolutionNote: string): boolean {
    if (!endpointList.ok) {
      // A resolver error with endpoints known: keep serving them (as round_robin does).
      if (this.#noEndpoints !== undefined) this.helper.updateState(State.TRANSIENT_FAILURE, new grpc.experimental.UnavailablePicker(endpointList.error), endpointList.error.details);
      return true;
    }
    if (!(config instanceof WeightedTargetConfig)) return false;
    const byAddress = new Map(endpointList.value.map((endpoint) => [addressKey(endpoint), endpoint]));
    this.#updatesPaused = true;
    for (const [name, target] of this.#targets) {
      if (config.targets.has(name)) continue;
      target.balancer.destroy();
      this.#targets.delete(name);
    }
    let total = 0;
    for (const [name, targetConfig] of config.targets) {
      let target = this.#targets.get(name);
      if (!target) this.#targets.set(name, (target = new Target(name, this.helper, () => this.#update())));
      const endpoints = targetConfig.endpoints.flatMap((address) => byAddress.get(address) ?? []);
      target.weight = targetConfig.weight;
      target.endpointCount = endpoints.length;
      total += endpoints.length;
      target.balancer.updateAddressList(grpc.experimental.statusOrFromValue(endpoints), targetConfig.childPolicy, options, resolutionNote);
    }
    this.#updatesPaused = false;
    this.#noEndpoints = total === 0 ? `${weightedTargetPolicyName}: no addresses resolved. Resolution note: ${resolutionNote}` : undefined;
    this.#update();
    return true;
  }

  #update(): void {
    if (this.#updatesPaused) return;
    if (this.#noEndpoints !== undefined) {
      // Fail fast, whatever the children settle in with an empty list (round_robin: IDLE).
      this.helper.updateState(State.TRANSIENT_FAILURE, new grpc.experimental.UnavailablePicker({ details: this.#noEndpoints }), this.#noEndpoints);
      return;
    }
    const { state, picker, errorMessage } = aggregateTargets(this.#targets.values());
    if (picker) this.helper.updateState(state, picker, null);
    else if (state === State.TRANSIENT_FAILURE) this.helper.updateState(state, new grpc.experimental.UnavailablePicker({ details: errorMessage ?? undefined }), errorMessage);
    else this.helper.updateState(state, new grpc.experimental.QueuePicker(this), null);
  }

  exitIdle(): void {
    for (const target of this.#targets.values()) target.balancer.exitIdle();
  }
  resetBackoff(): void {
    for (const target of this.#targets.values()) target.balancer.resetBackoff();
  }
  destroy(): void {
    for (const target of this.#targets.values()) target.balancer.destroy();
    this.#targets.clear();
  }
  getTypeName(): string {
    return weightedTargetPolicyName;
  }
}

/**
 * registerWeightedTargetBalancer registers `meshkit_weighted_target` with grpc-js (once; later
 * calls do nothing). The `consul:` resolver sends it for a chain that splits calls between
 * targets. Throws on a @grpc/grpc-js outside `~1.14.7`.
 */
export function registerWeightedTargetBalancer(): void {
  assertSupportedGrpcJs();
  if (grpc.experimental.isLoadBalancerNameRegistered(weightedTargetPolicyName)) return;
  grpc.experimental.registerLoadBalancerType(weightedTargetPolicyName, WeightedTargetLoadBalancer, WeightedTargetConfig);
}
