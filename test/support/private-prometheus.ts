import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { freePort } from "./free-port.js";
import { eventually } from "./infra.js";
import { projectRoot } from "./service-process.js";

/** A Prometheus of a test's own: the shipped scrape configuration, narrowed to the test's services. */
export interface PrivatePrometheus {
  readonly url: string;
  /** Stops it (SIGTERM), as an outage would; safe to call twice. */
  stop(): Promise<void>;
}

/**
 * startPrivatePrometheus runs the `prometheus` that scripts/setup.sh built with the shipped
 * deploy/prometheus/prometheus.yml (its Consul service discovery and relabelling, so a test
 * reads the labels users get), changed in what a test needs: the Consul agent at
 * `consul`, only `services` discovered (other tests' services on the shared agent are left
 * alone), every second (scrapes and discovery), no alert rules, a free port and a storage
 * folder of its own, removed at stop.
 */
export async function startPrivatePrometheus(consul: { host: string; port: number }, services: readonly string[]): Promise<PrivatePrometheus> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "meshkit-prometheus-"));
  const shipped = await readFile(path.join(projectRoot, "deploy/prometheus/prometheus.yml"), "utf8");
  const edits: [RegExp, string][] = [
    [/scrape_interval: 5s/, "scrape_interval: 1s"],
    [/evaluation_interval: 5s/, "evaluation_interval: 1s"],
    [/rule_files:\n\s+- alerts.yml\n/, ""],
    [/server: 127\.0\.0\.1:8500/, `server: ${consul.host}:${consul.port}\n        services: [${services.map((name) => JSON.stringify(name)).join(", ")}]`],
    [/refresh_interval: 5s/, "refresh_interval: 1s"],
  ];
  let config = shipped;
  for (const [pattern, replacement] of edits) {
    if (!pattern.test(config)) throw new Error(`deploy/prometheus/prometheus.yml no longer has ${pattern}: update test/support/private-prometheus.ts`);
    config = config.replace(pattern, replacement);
  }
  await writeFile(path.join(dir, "prometheus.yml"), config);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child: ChildProcess = spawn("prometheus", [`--config.file=${path.join(dir, "prometheus.yml")}`, `--storage.tsdb.path=${path.join(dir, "data")}`, `--web.listen-address=127.0.0.1:${port}`], { stdio: "ignore" });
  const exited = once(child, "exit");
  let stopped: Promise<void> | undefined;
  const stop = () =>
    (stopped ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
        await exited;
        clearTimeout(timer);
      }
      await rm(dir, { recursive: true, force: true });
    })());
  try {
    await eventually("Prometheus to answer", async () => ((await fetch(`${url}/-/ready`)).ok ? true : undefined), { timeoutMs: 30_000 });
  } catch (error) {
    await stop();
    throw error;
  }
  return { url, stop };
}
