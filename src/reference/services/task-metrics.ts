import { Counter, Histogram, register } from "prom-client";

/**
 * The seed's orchestration metrics: every background task (a scheduled sync, an outbox relay
 * round that failed, a projection batch) reports here, so one failing task is logged and counted
 * without stopping the others.
 */
export const taskResults = {
  count: new Counter({ name: "task_results_count_total", help: "Background task runs by task and outcome.", labelNames: ["task_name", "status"], registers: [register] }),
  errors: new Counter({ name: "task_results_errors_total", help: "Background task failures by task and error type.", labelNames: ["task_name", "error_type"], registers: [register] }),
  duration: new Histogram({
    name: "task_results_duration_seconds",
    help: "Background task run time by task and outcome.",
    labelNames: ["task_name", "status"],
    buckets: [0.001, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 120, 300],
    registers: [register],
  }),
};

/** Runs `task` and records its outcome; rethrows its error. */
export async function recordTask<T>(taskName: string, task: () => Promise<T>): Promise<T> {
  const started = performance.now();
  try {
    const result = await task();
    taskResults.count.inc({ task_name: taskName, status: "success" });
    taskResults.duration.observe({ task_name: taskName, status: "success" }, (performance.now() - started) / 1000);
    return result;
  } catch (error) {
    taskResults.count.inc({ task_name: taskName, status: "failure" });
    taskResults.errors.inc({ task_name: taskName, error_type: errorType(error) });
    taskResults.duration.observe({ task_name: taskName, status: "failure" }, (performance.now() - started) / 1000);
    throw error;
  }
}

/** A short, bounded label for an error: its code when it has one, else its class name. */
export function errorType(error: unknown): string {
  const code = (error as { code?: unknown } | undefined)?.code;
  if (typeof code === "string" && /^[A-Z0-9_]{1,40}$/.test(code)) return code;
  if (typeof code === "number") return `code_${code}`;
  return error instanceof Error ? error.name : "unknown";
}
