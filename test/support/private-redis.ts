import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { Redis } from "ioredis";
import { eventually } from "./infra.js";
import { freePort } from "./free-port.js";

/** A redis-server of the test's own on a free loopback port, stoppable without touching the shared one. */
export interface PrivateRedis {
  readonly url: string;
  readonly client: Redis;
  /** Kills the server (SIGKILL); `start()` brings it back on the same port. */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** The end of the test: the server stopped and the client disconnected. */
  close(): Promise<void>;
  /** SIGSTOP: Redis keeps its connections open and stops answering, as a hung server does. */
  pause(): void;
  /** SIGCONT after pause(). */
  resume(): void;
}

export async function startPrivateRedis(): Promise<PrivateRedis> {
  const port = await freePort();
  let child: ChildProcess | undefined;
  const client = new Redis({ host: "127.0.0.1", port, lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => 100 });
  client.on("error", () => undefined);
  const start = async () => {
    child = spawn("redis-server", ["--bind", "127.0.0.1", "--port", String(port), "--save", "", "--appendonly", "no"], { stdio: "ignore" });
    await eventually("the private Redis", async () => ((await client.ping().catch(() => undefined)) === "PONG" ? true : undefined), { timeoutMs: 10_000 });
  };
  const stop = async () => {
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, "exit");
    child.kill("SIGKILL");
    await exited;
  };
  await client.connect().catch(() => undefined);
  await start();
  const close = async () => {
    await stop();
    client.disconnect();
  };
  return { url: `redis://127.0.0.1:${port}`, client, start, stop, close, pause: () => child?.kill("SIGSTOP"), resume: () => child?.kill("SIGCONT") };
}
