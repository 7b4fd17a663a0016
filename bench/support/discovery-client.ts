/**
 * The mesh client of bench/discovery.bench.ts's scale part, in a process of its own so that its
 * CPU time is the client's alone (the bench's own requests to Consul are not in it). It makes
 * `CLIENTS` mesh transports for `SERVICE` on one Consul client and reports over IPC:
 *   - { type: "instances", client, at, count, up }: each "instances" event, `at` in ms since the
 *     epoch at sub-ms resolution (performance.timeOrigin + performance.now()), `up` whether
 *     `WATCHED` (an instance id) is in the set;
 *   - { type: "cpu", cpuUs }: its CPU time so far, on request;
 *   - { type: "memory", heapUsed, rss }: on request, after a full GC (run with --expose-gc);
 *   - { type: "profiled" }: after "profile-stop" wrote the CPU profile taken since "profile-start"
 *     to PROFILE_OUT (the bench's changes window only, not the start-up).
 * Env: CONSUL_HTTP_PORT, SERVICE, CLIENTS (default 1), CACHED ("1": `?cached`), WATCHED, PROFILE_OUT,
 * HEAP_SAMPLING ("1": an allocation-sampling profile, `.heapprofile`, instead of the CPU profile).
 * The bench passes BENCH_CLIENT_NODE_ARGS to its node (for example "--trace-gc").
 */
import { writeFileSync } from "node:fs";
import { Session } from "node:inspector/promises";
import { Registry } from "prom-client";
import { createMeshTransport, type MeshTransport } from "../../src/client/index.js";
import { createConsulClient } from "../../src/platform/consul.js";

const send = (message: unknown) => process.send!(message);
const gc = (globalThis as { gc?: () => void }).gc;
const memory = () => {
  gc?.();
  gc?.();
  const { heapUsed, rss } = process.memoryUsage();
  return { type: "memory", heapUsed, rss };
};
const cpu = () => {
  const { user, system } = process.cpuUsage();
  return { type: "cpu", cpuUs: user + system };
};
const session = new Session();

const service = process.env.SERVICE!;
const watched = process.env.WATCHED ?? "";
const consul = createConsulClient({ host: "127.0.0.1", port: Number(process.env.CONSUL_HTTP_PORT) });
let transports: MeshTransport[] = [];

process.on("message", (message: { type: string }) => {
  if (message.type === "memory") send(memory());
  if (message.type === "cpu") send(cpu());
  if (message.type === "profile-start") {
    session.connect();
    if (process.env.HEAP_SAMPLING) void session.post("HeapProfiler.enable").then(() => session.post("HeapProfiler.startSampling", { samplingInterval: 4096, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true }));
    else void session.post("Profiler.enable").then(() => session.post("Profiler.start"));
  }
  if (message.type === "profile-stop") {
    if (process.env.HEAP_SAMPLING) {
      void session.post("HeapProfiler.stopSampling").then(({ profile }) => {
        writeFileSync(process.env.PROFILE_OUT!.replace(".cpuprofile", ".heapprofile"), JSON.stringify(profile));
        send({ type: "profiled" });
      });
      return;
    }
    void session.post("Profiler.stop").then(({ profile }) => {
      writeFileSync(process.env.PROFILE_OUT!, JSON.stringify(profile));
      send({ type: "profiled" });
    });
  }
  if (message.type === "start") {
    const count = Number(process.env.CLIENTS ?? 1);
    transports = Array.from({ length: count }, (_, client) =>
      createMeshTransport({
        service,
        consul,
        cached: process.env.CACHED === "1",
        metrics: new Registry(),
        onEvent: (event) => {
          if (event.type !== "instances") return;
          const at = performance.timeOrigin + performance.now();
          send({ type: "instances", client, at, count: event.instances.length, up: event.instances.some((instance) => instance.id === watched) });
        },
      }),
    );
  }
  if (message.type === "close") {
    for (const transport of transports) transport.close();
    process.disconnect();
  }
});
send({ type: "ready" });
