import { spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { once } from "node:events";
import { createInterface } from "node:readline";
import path from "node:path";

export const projectRoot = path.resolve(import.meta.dirname, "../..");

/** A service started as a real, separate process, as it would run in production. */
export interface ServiceProcess {
  readonly instanceId: string;
  readonly port: number;
  readonly child: ChildProcess;
  /** Everything the process wrote, for failure messages. */
  readonly output: string[];
  signal(signal: NodeJS.Signals): void;
  /** Resolves with the exit code (or the signal) once the process has ended. */
  readonly exited: Promise<number | NodeJS.Signals>;
}

/**
 * startServiceProcess runs `entry` (a path under src/) with Node and tsx, and resolves once the
 * service logs that it serves and is registered in Consul. With `compiledRoot` it runs the
 * JavaScript that tsc compiled from `entry` into that folder instead (a benchmark measures what
 * users run; see tsconfig.bench.json).
 */
export async function startServiceProcess(
  entry: string,
  env: Record<string, string> = {},
  { readyTimeoutMs = 30_000, compiledRoot }: { readyTimeoutMs?: number; compiledRoot?: string } = {},
): Promise<ServiceProcess> {
  const instanceId = env.INSTANCE_ID ?? `test-${randomUUID()}`;
  const program = compiledRoot ? [path.join(compiledRoot, entry.replace(/\.ts$/, ".js"))] : ["--import", "tsx", path.join(projectRoot, entry)];
  const child = spawn(process.execPath, program, {
    cwd: projectRoot,
    env: { ...process.env, LOG_LEVEL: "info", ...env, INSTANCE_ID: instanceId },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const output: string[] = [];
  const exited = once(child, "exit").then(([code, signal]) => (code ?? signal) as number | NodeJS.Signals);
  createInterface({ input: child.stderr! }).on("line", (line) => output.push(line));

  const port = await new Promise<number>((resolve, reject) => {
    // A process that never got ready is killed, not left behind for nobody to stop.
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${entry} not ready in ${readyTimeoutMs} ms:\n${output.join("\n")}`));
    }, readyTimeoutMs);
    createInterface({ input: child.stdout! }).on("line", (line) => {
      output.push(line);
      const record = parseJson(line);
      if (record?.msg === "serving and registered in Consul" && typeof record.address === "string") {
        clearTimeout(timer);
        resolve(Number(record.address.split(":").pop()));
      }
    });
    void exited.then((how) => {
      clearTimeout(timer);
      reject(new Error(`${entry} exited (${how}) before it was ready:\n${output.join("\n")}`));
    });
  });

  return { instanceId, port, child, output, exited, signal: (signal) => child.kill(signal) };
}

/** Stops a process for good at the end of a test, whatever state it is in. */
export async function killProcess(service: ServiceProcess | undefined): Promise<void> {
  if (!service || service.child.exitCode !== null || service.child.signalCode !== null) return;
  service.child.kill("SIGCONT");
  service.child.kill("SIGKILL");
  await service.exited;
}

function parseJson(line: string): Record<string, unknown> | undefined {
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}
