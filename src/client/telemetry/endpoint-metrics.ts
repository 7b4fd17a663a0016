import type { DescMethod } from "@bufbuild/protobuf";
import type { Code } from "@connectrpc/connect";
import { codeName, type Observer } from "../../common/code-observers.js";
import { breakerStateValue, type ClientMetrics } from "./metrics.js";
import type { BreakerState } from "../health/endpoint-health.js";

/** The series of one service's instance in one registry, and how many endpoints write them. */
interface SharedSeries {
  holders: number;
  attemptLabels: Map<string, string[]>;
  states: Set<BreakerState>;
}

/** Per registry: two transports of one service write the same series; the last to let go removes them. */
const sharedSeries = new WeakMap<ClientMetrics, Map<string, SharedSeries>>();

/**
 * EndpointSeries are the Prometheus series of one instance of one transport (attempt durations,
 * breaker state and transitions). Instance ids change with every process (a fresh UUID per
 * start), so the series must go when the instance leaves, or every restart adds series forever:
 * `remove()` drops every series of the instance once no endpoint of any transport writes them.
 * Observers are cached per method and code, so recording an attempt builds no label string on
 * the hot path.
 */
export class EndpointSeries {
  #attempts = new Map<DescMethod, Observer[]>();
  #shared: SharedSeries;
  #key: string;
  #removed = false;

  constructor(
    private readonly metrics: ClientMetrics,
    private readonly service: string,
    private readonly instance: string,
  ) {
    this.#key = `${service}\n${instance}`;
    let byKey = sharedSeries.get(metrics);
    if (!byKey) sharedSeries.set(metrics, (byKey = new Map()));
    let shared = byKey.get(this.#key);
    if (!shared) byKey.set(this.#key, (shared = { holders: 0, attemptLabels: new Map(), states: new Set() }));
    shared.holders++;
    this.#shared = shared;
    metrics.breakerState.set({ service, instance }, breakerStateValue.closed);
  }

  observeAttempt(method: DescMethod, code: Code | 0, seconds: number): void {
    let observers = this.#attempts.get(method);
    if (!observers) this.#attempts.set(method, (observers = []));
    let observer = observers[code];
    if (!observer) {
      const labels = [this.service, method.name, this.instance, codeName(code)];
      this.#shared.attemptLabels.set(labels.join("\n"), labels);
      observer = observers[code] = this.metrics.attempts.labels(...labels);
    }
    observer.observe(seconds);
  }

  breaker(state: BreakerState): void {
    this.metrics.breakerState.set({ service: this.service, instance: this.instance }, breakerStateValue[state]);
    this.metrics.breakerTransitions.inc({ service: this.service, instance: this.instance, state });
    this.#shared.states.add(state);
  }

  remove(): void {
    if (this.#removed) return;
    this.#removed = true;
    this.#attempts.clear();
    if (--this.#shared.holders > 0) return;
    sharedSeries.get(this.metrics)?.delete(this.#key);
    for (const labels of this.#shared.attemptLabels.values()) this.metrics.attempts.remove(...labels);
    for (const state of this.#shared.states) this.metrics.breakerTransitions.remove({ service: this.service, instance: this.instance, state });
    this.metrics.breakerState.remove({ service: this.service, instance: this.instance });
  }
}
