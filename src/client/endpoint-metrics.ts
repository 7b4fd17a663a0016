import type { DescMethod } from "@bufbuild/protobuf";
import type { Code } from "@connectrpc/connect";
import { codeName, type Observer } from "../common/code-observers.js";
import { breakerStateValue, type ClientMetrics } from "./client-metrics.js";
import type { BreakerState } from "./endpoint-health.js";

/**
 * EndpointSeries are the Prometheus series of one instance of one transport (attempt durations,
 * breaker state and transitions). Instance ids change with every process (a fresh UUID per
 * start), so the series must go when the instance leaves, or every restart adds series forever:
 * `remove()` drops each series this endpoint created. Observers are cached per method and code,
 * so recording an attempt builds no label string on the hot path.
 */
export class EndpointSeries {
  #attempts = new Map<DescMethod, Observer[]>();
  #attemptLabels: string[][] = [];
  #transitions = new Set<BreakerState>();

  constructor(
    private readonly metrics: ClientMetrics,
    private readonly service: string,
    private readonly instance: string,
  ) {
    metrics.breakerState.set({ service, instance }, breakerStateValue.closed);
  }

  observeAttempt(method: DescMethod, code: Code | 0, seconds: number): void {
    let observers = this.#attempts.get(method);
    if (!observers) this.#attempts.set(method, (observers = []));
    let observer = observers[code];
    if (!observer) {
      const labels = [this.service, method.name, this.instance, codeName(code)];
      this.#attemptLabels.push(labels);
      observer = observers[code] = this.metrics.attempts.labels(...labels);
    }
    observer.observe(seconds);
  }

  breaker(state: BreakerState): void {
    this.metrics.breakerState.set({ service: this.service, instance: this.instance }, breakerStateValue[state]);
    this.metrics.breakerTransitions.inc({ service: this.service, instance: this.instance, state });
    this.#transitions.add(state);
  }

  remove(): void {
    for (const labels of this.#attemptLabels) this.metrics.attempts.remove(...labels);
    for (const state of this.#transitions) this.metrics.breakerTransitions.remove({ service: this.service, instance: this.instance, state });
    this.metrics.breakerState.remove({ service: this.service, instance: this.instance });
    this.#attempts.clear();
    this.#attemptLabels = [];
  }
}
