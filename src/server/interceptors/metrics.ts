import type { DescMethod } from "@bufbuild/protobuf";
import { ConnectError, type Interceptor } from "@connectrpc/connect";
import { type Histogram, register as defaultRegistry, type Registry } from "prom-client";
import { BoundHistogram } from "../../common/bound-histogram.js";
import { CodeObservers } from "../../common/code-observers.js";
import { observeCalls, type CallObserver } from "./observe-calls.js";

const byRegistry = new WeakMap<Registry, Histogram<"service" | "method" | "code">>();

/** The server's RED histogram: rate and errors from its _count by code, duration from its buckets. */
export function serverCallHistogram(registry: Registry = defaultRegistry): Histogram<"service" | "method" | "code"> {
  let histogram = byRegistry.get(registry);
  if (!histogram) {
    // Observed on every call: children that keep their own counts (bound-histogram.ts).
    histogram = new BoundHistogram({
      name: "meshkit_server_call_duration_seconds",
      help: "RPCs served, by gRPC service, method and final code.",
      labelNames: ["service", "method", "code"],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    });
    byRegistry.set(registry, histogram);
  }
  return histogram;
}

/**
 * serverMetrics records every call in `meshkit_server_call_duration_seconds`; a streaming
 * response is measured to its end. Labelled children are cached per method and code.
 */
export function serverMetrics(registry?: Registry): Interceptor {
  const histogram = serverCallHistogram(registry);
  const observers = new CodeObservers((method, code) => histogram.labels(method.parent.typeName, method.name, code));
  return observeCalls((request) => new MeasuredCall(observers, request.method));
}

/** One measured call: its duration goes to the histogram, under its final code, when it ends. */
class MeasuredCall implements CallObserver {
  readonly #started = performance.now();

  constructor(
    private readonly observers: CodeObservers,
    private readonly method: DescMethod,
  ) {}

  end(error: unknown): void {
    this.observers.observe(this.method, error === undefined ? 0 : ConnectError.from(error).code, (performance.now() - this.#started) / 1000);
  }
}
