import { execFile } from "node:child_process";
import { chown, mkdtemp } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { freePort } from "./free-port.js";

const run = promisify(execFile);

/** A PostgreSQL cluster of the test's own (initdb in a temp folder, a free loopback port). */
export interface PrivatePostgres {
  readonly port: number;
  /** Immediate shutdown, as a crash would be. */
  stop(): Promise<void>;
  start(): Promise<void>;
}

async function binDir(): Promise<string> {
  const { stdout } = await run("bash", ["-c", "ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1"]);
  return stdout.trim();
}

export async function startPrivatePostgres(): Promise<PrivatePostgres> {
  const bin = await binDir();
  const dir = await mkdtemp(path.join(os.tmpdir(), "meshkit-pg-"));
  const port = await freePort();
  // PostgreSQL refuses to run as root: run its tools as the postgres user when we are root.
  const asOwner = async (command: string, args: string[]) => {
    if (process.getuid?.() === 0) return run("runuser", ["-u", "postgres", "--", path.join(bin, command), ...args]);
    return run(path.join(bin, command), args);
  };
  if (process.getuid?.() === 0) {
    const { stdout } = await run("id", ["-u", "postgres"]);
    const { stdout: group } = await run("id", ["-g", "postgres"]);
    await chown(dir, Number(stdout), Number(group));
  }
  await asOwner("initdb", ["-D", path.join(dir, "data"), "-A", "trust", "-U", "postgres", "--no-sync"]);
  const start = async () => {
    await asOwner("pg_ctl", ["-D", path.join(dir, "data"), "-l", path.join(dir, "log"), "-w", "-o", `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`, "start"]);
  };
  const stop = async () => {
    await asOwner("pg_ctl", ["-D", path.join(dir, "data"), "-m", "immediate", "-w", "stop"]).catch(() => undefined);
  };
  await start();
  return { port, start, stop };
}
