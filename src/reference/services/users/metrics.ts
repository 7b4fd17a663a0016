import { Counter, Histogram, register } from "prom-client";

/** The seed's user sync metrics, named after Prometheus conventions. */
export const userSyncMetrics = {
  /** Users synced ("success") or not ("failure"). */
  count: new Counter({ name: "user_sync_count_total", help: "Users synced, by outcome.", labelNames: ["status"], registers: [register] }),
  errors: new Counter({ name: "user_sync_errors_total", help: "User sync errors by type (invalid, database, source).", labelNames: ["error_type"], registers: [register] }),
  /** One observation per sync run or import. */
  duration: new Histogram({
    name: "user_sync_duration_seconds",
    help: "Sync run time, by outcome (failure when any user failed).",
    labelNames: ["status"],
    buckets: [0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
    registers: [register],
  }),
};
for (const status of ["success", "failure"]) {
  userSyncMetrics.count.inc({ status }, 0);
  userSyncMetrics.duration.zero({ status });
}

/** Records a finished run: its users by outcome and its duration. */
export function recordSyncRunMetrics(synced: number, failed: number, seconds: number): void {
  userSyncMetrics.count.inc({ status: "success" }, synced);
  userSyncMetrics.count.inc({ status: "failure" }, failed);
  userSyncMetrics.duration.observe({ status: failed > 0 ? "failure" : "success" }, seconds);
}
