import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import path from "node:path";
import { pathToFileURL } from "node:url";

const projectRoot = path.resolve(import.meta.dirname, "../..");

/** The URL to import `startTelemetry` from inside a probe. */
export const telemetryModuleUrl = pathToFileURL(path.join(projectRoot, "src/platform/telemetry.ts")).href;

/**
 * Runs `source` (an ES module) in a child process with `env` added, since the OpenTelemetry SDK
 * is process-global and each case needs its own, and returns the last line it printed, parsed
 * as JSON. The probe must exit 0.
 */
export async function runTelemetryProbe<T>(source: string, env: Record<string, string>): Promise<T> {
  const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", source], {
    cwd: projectRoot,
    env: { ...process.env, OTEL_TRACES_SAMPLER: "always_on", ...env },
    stdio: ["ignore", "pipe", "inherit"],
  });
  let output = "";
  child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const [code] = (await once(child, "exit")) as [number];
  assert.equal(code, 0);
  return JSON.parse(output.trim().split("\n").pop()!) as T;
}
