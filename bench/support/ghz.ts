import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";

/** Where proto/ is: the project's root (or .bench-build/, which links to it, when compiled). */
const protoRoot = path.resolve(import.meta.dirname, "../..");

/** Linux reports process CPU time in clock ticks of 1/100 s (`getconf CLK_TCK`). */
const clockTicksPerSecond = 100;

/** A process's user + system CPU time so far, in seconds, from /proc. */
export function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  // utime and stime are fields 14 and 15 of /proc/<pid>/stat; [1] starts at field 3.
  return (Number(fields[11]) + Number(fields[12])) / clockTicksPerSecond;
}

export const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
};

export interface GhzReport {
  count: number;
  total: number;
  rps: number;
  statusCodeDistribution?: Record<string, number>;
  errorDistribution?: Record<string, number> | null;
  latencyDistribution?: { percentage: number; latency: number }[] | null;
  /** Every call: when it started, how long it took (ns), and how it ended. */
  details?: GhzCall[] | null;
}

export interface GhzCall {
  timestamp: string;
  latency: number;
  error: string;
  status: string;
}

const execFileAsync = promisify(execFile);

/**
 * runGhz drives `port` with ghz (meshkit.echo.v1 from proto/) over one connection. `tls` gives
 * ghz's TLS flags (`--cacert`, `--cert`, `--key`, `--skipTLS`); without it, plaintext.
 */
export async function runGhz(
  port: number,
  { call, data, concurrency, durationSeconds, tls }: { call: string; data: object; concurrency: number; durationSeconds: number; tls?: string[] },
): Promise<GhzReport> {
  const { stdout } = await execFileAsync(
    "ghz",
    [
      ...(tls ?? ["--insecure"]),
      "--proto", path.join(protoRoot, "proto/meshkit/echo/v1/echo.proto"),
      "--import-paths", path.join(protoRoot, "proto"),
      "--call", call,
      "--data", JSON.stringify(data),
      "--connections", "1",
      "--concurrency", String(concurrency),
      "--duration", `${durationSeconds}s`,
      "--format", "json",
      `127.0.0.1:${port}`,
    ],
    { maxBuffer: 64 * 1024 * 1024, timeout: (durationSeconds + 30) * 1000 },
  );
  return JSON.parse(stdout) as GhzReport;
}

/** How long before the last call ghz started a connection-closing failure may end and still be its cut. */
const endOfRunMs = 100;
const connectionClosing = /closed network connection|client connection is closing|transport is closing|context canceled/;

/**
 * Sorts a run's failed calls. When its duration ends, ghz closes the connection under the calls
 * still in flight ("use of closed network connection", "transport is closing", ...) and starts no
 * more: those are the run's cut, not the server's failures, and they end no earlier than (within
 * 100 ms of) the last call it started. Any other failure, or a closing one in the middle of the
 * run, is reported with when it ended.
 */
export function failuresOf(report: GhzReport): { cutAtEnd: number; elsewhere: string[] } {
  const details = report.details ?? [];
  const endOf = (detail: GhzCall) => Date.parse(detail.timestamp) + detail.latency / 1e6;
  let runStart = Infinity;
  let lastStart = -Infinity;
  let runEnd = -Infinity;
  for (const detail of details) {
    const started = Date.parse(detail.timestamp);
    runStart = Math.min(runStart, started);
    lastStart = Math.max(lastStart, started);
    runEnd = Math.max(runEnd, endOf(detail));
  }
  let cutAtEnd = 0;
  const elsewhere = new Map<string, number[]>();
  for (const detail of details) {
    if (detail.status === "OK") continue;
    const endedAt = endOf(detail);
    if (connectionClosing.test(detail.error) && endedAt >= lastStart - endOfRunMs) {
      cutAtEnd++;
      continue;
    }
    const at = elsewhere.get(detail.error) ?? [];
    at.push(Math.round(endedAt - runStart));
    elsewhere.set(detail.error, at);
  }
  return {
    cutAtEnd,
    elsewhere: [...elsewhere].map(([error, at]) => `${at.length} x ${error} (ended at ${at.slice(0, 5).join(", ")}${at.length > 5 ? ", ..." : ""} ms of the ${Math.round(runEnd - runStart)} ms run)`),
  };
}
