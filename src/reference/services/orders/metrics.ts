import { Code, ConnectError } from "@connectrpc/connect";
import { Counter, Histogram, register } from "prom-client";
import { codeName } from "../../../common/code-observers.js";

/** The seed's order metrics, named after Prometheus conventions. */
export const orderMetrics = {
  count: new Counter({ name: "order_processing_count_total", help: "Order commands by outcome.", labelNames: ["status"], registers: [register] }),
  errors: new Counter({ name: "order_processing_errors_total", help: "Failed order commands by error type (gRPC code).", labelNames: ["error_type"], registers: [register] }),
  duration: new Histogram({
    name: "order_processing_duration_seconds",
    help: "Order command time by outcome.",
    labelNames: ["status"],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [register],
  }),
};
// Series exist from the start, so rates and alert expressions have data before the first failure.
for (const status of ["success", "failure"]) {
  orderMetrics.count.inc({ status }, 0);
  orderMetrics.duration.zero({ status });
}

/**
 * measureOrderCommand records a command's outcome. A caller's mistake (invalid, conflicting) is
 * an answer, not a processing failure: only server-side codes count as failures.
 */
export async function measureOrderCommand<T>(command: () => Promise<T>): Promise<T> {
  const started = performance.now();
  const done = (status: "success" | "failure") => {
    orderMetrics.count.inc({ status });
    orderMetrics.duration.observe({ status }, (performance.now() - started) / 1000);
  };
  try {
    const result = await command();
    done("success");
    return result;
  } catch (error) {
    const code = ConnectError.from(error).code;
    if (code === Code.AlreadyExists || code === Code.InvalidArgument || code === Code.Canceled) {
      done("success");
    } else {
      done("failure");
      orderMetrics.errors.inc({ error_type: codeName(code) });
    }
    throw error;
  }
}
