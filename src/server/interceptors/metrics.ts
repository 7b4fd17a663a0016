import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { Histogram, register as defaultRegistry, type Registry } from "prom-client";
import { codeName } from "../../client/client-metrics.js";

const byRegistry = new WeakMap<Registry, Histogram<"service" | "method" | "code">>();

/** The server's RED histogram: rate and errors from its _count by code, duration from its buckets. */
export function serverCallHistogram(registry: Registry = defaultRegistry): Histogram<"service" | "method" | "code"> {
  let histogram = byRegistry.get(registry);
  if (!histogram) {
    histogram = new Histogram({
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
 * response is measured to its end.
 */
export function serverMetrics(registry?: Registry): Interceptor {
  const histogram = serverCallHistogram(registry);
  return (next) => async (request) => {
    const started = performance.now();
    const record = (code: Code | 0) =>
      histogram.observe({ service: request.service.typeName, method: request.method.name, code: codeName(code) }, (performance.now() - started) / 1000);
    try {
      const response = await next(request);
      if (!response.stream) {
        record(0);
        return response;
      }
      return {
        ...response,
        message: (async function* () {
          let code: Code | 0 = 0;
          try {
            yield* response.message;
          } catch (error) {
            code = ConnectError.from(error).code;
            throw error;
          } finally {
            record(code);
          }
        })(),
      };
    } catch (error) {
      record(ConnectError.from(error).code);
      throw error;
    }
  };
}
