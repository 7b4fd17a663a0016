/**
 * What the service mesh's identity costs a served call and a new connection, side by side in one
 * run (the last part of `make bench-calls`):
 *   1. Calls: the echo service (runService) with mutual TLS from files (TLS_* variables, client
 *      certificates required) against the same service with the mesh identity (MESH_IDENTITY:
 *      its leaf from Consul's CA, client certificates checked against Consul's roots, and every
 *      call decided by 50 intentions on it, 10 of them L7). ghz as the load, one connection,
 *      BENCH_CONCURRENCY in flight, tiny unary calls, alternated rounds; the target ratio is the
 *      median of the rounds' ratios: mesh >= 0.9x files. Both run with the OpenTelemetry SDK
 *      disabled (OTEL_SDK_DISABLED), so the spans' export does not drown the difference.
 *   2. New connections: a client here opens connections one after another (BENCH_DIALERS at a
 *      time), each a full TLS 1.3 handshake with a client certificate and one call, then closes
 *      it; against the mesh host and against a bare @grpc/grpc-js server with mutual TLS
 *      (bench/support/echo-server.ts grpc-js-mtls). Reported: connections/s and the server's
 *      CPU per connection (no target: the issue asks for the figure beside grpc-js's).
 * Every server runs compiled (.bench-build/, built by bench/calls-server.bench.ts, or here if
 * missing). Needs Consul (make infra-up) and ghz (scripts/setup.sh).
 *
 * Run: make bench-calls  (or: source scripts/lib.sh && node --import tsx bench/mesh-identity.bench.ts)
 * Env: BENCH_SECONDS (default 2), BENCH_ROUNDS (default 7), BENCH_CONCURRENCY (default 32), BENCH_DIALERS (default 4).
 */
import { execFile, spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, symlink, writeFile } from "node:fs/promises";
import http2 from "node:http2";
import os from "node:os";
import path from "node:path";
import { connect, type ConnectionOptions } from "node:tls";
import { createInterface } from "node:readline";
import { promisify } from "node:util";
import { create, toBinary } from "@bufbuild/protobuf";
import { EchoRequestSchema } from "../gen/meshkit/echo/v1/echo_pb.js";
import { createTestPki } from "../test/support/certificates.js";
import { consulRequest, leafOf } from "../test/support/mesh.js";
import { grpcFrame } from "../test/support/raw-grpc.js";
import { killProcess, projectRoot, startServiceProcess } from "../test/support/service-process.js";
import { cpuSeconds, failuresOf, median, runGhz } from "./support/ghz.js";

const seconds = Number(process.env.BENCH_SECONDS ?? 2);
const rounds = Number(process.env.BENCH_ROUNDS ?? 7);
const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 32);
const dialers = Number(process.env.BENCH_DIALERS ?? 4);
const compiledRoot = path.join(projectRoot, ".bench-build");
const echoPath = "/meshkit.echo.v1.EchoService/Echo";
const echoBody = grpcFrame(toBinary(EchoRequestSchema, create(EchoRequestSchema, { message: "bench" })));

interface Server {
  name: string;
  pid: number;
  port: number;
  /** ghz's TLS flags for it. */
  ghzTls: string[];
  /** What a dialing client presents and trusts. */
  clientTls: ConnectionOptions;
  stop(): Promise<void>;
}

/** 50 intentions on `destination`: 49 other sources (9 of them L7), then the bench's caller, L7 (10th L7). */
async function writeIntentions(destination: string, caller: string): Promise<void> {
  await consulRequest("PUT", "/config", { Kind: "service-defaults", Name: destination, Protocol: "grpc" });
  const l7 = (prefix: string) => [{ Action: "deny", HTTP: { PathPrefix: `/${prefix}.` } }, { Action: "allow", HTTP: { PathPrefix: "/meshkit." } }];
  const sources = [
    ...Array.from({ length: 40 }, (_, i) => ({ Name: `bench-other-${i}`, Action: i % 2 ? "allow" : "deny" })),
    ...Array.from({ length: 9 }, (_, i) => ({ Name: `bench-l7-${i}`, Permissions: l7(`other${i}`) })),
    { Name: caller, Permissions: [...Array.from({ length: 9 }, (_, i) => ({ Action: "deny", HTTP: { PathExact: `/meshkit.echo.v1.EchoService/Other${i}` } })), { Action: "allow", HTTP: { PathPrefix: "/meshkit.echo.v1.EchoService/" } }] },
  ];
  await consulRequest("PUT", "/config", { Kind: "service-intentions", Name: destination, Sources: sources });
}

async function startMeshHost(destination: string, caller: string, dir: string): Promise<Server> {
  await writeIntentions(destination, caller);
  const service = await startServiceProcess("src/reference/services/echo/main.ts", { SERVICE_NAME: destination, INSTANCE_ID: "bench-mesh", MESH_IDENTITY: "true", OTEL_SDK_DISABLED: "true" }, { compiledRoot });
  const leaf = await leafOf(caller);
  await writeFile(path.join(dir, "caller.crt"), leaf.cert);
  await writeFile(path.join(dir, "caller.key"), leaf.key);
  return {
    name: "mesh identity",
    pid: service.child.pid!,
    port: service.port,
    // The host's leaf names no host (its identity is a SPIFFE URI): ghz cannot verify it by name.
    ghzTls: ["--skipTLS", "--cert", path.join(dir, "caller.crt"), "--key", path.join(dir, "caller.key")],
    clientTls: { ca: leaf.ca, cert: leaf.cert, key: leaf.key },
    stop: () => killProcess(service),
  };
}

async function startFilesHost(pki: Awaited<ReturnType<typeof createTestPki>>): Promise<Server> {
  const server = await pki.issue("bench-server");
  const client = await pki.issue("bench-client");
  const service = await startServiceProcess("src/reference/services/echo/main.ts", {
    SERVICE_NAME: `echo-tls-bench-${process.pid}`, INSTANCE_ID: "bench-tlsf",
    TLS_CERT_FILE: server.certFile, TLS_KEY_FILE: server.keyFile, TLS_CA_FILE: pki.caFile, TLS_REQUIRE_CLIENT_CERT: "true",
    CONSUL_CHECK_TLS_SKIP_VERIFY: "true", OTEL_SDK_DISABLED: "true",
  }, { compiledRoot });
  return {
    name: "mutual TLS from files",
    pid: service.child.pid!,
    port: service.port,
    ghzTls: ["--cacert", pki.caFile, "--cert", client.certFile, "--key", client.keyFile],
    clientTls: { ca: await readFile(pki.caFile), cert: await readFile(client.certFile), key: await readFile(client.keyFile) },
    stop: () => killProcess(service),
  };
}

async function startGrpcJsMtls(pki: Awaited<ReturnType<typeof createTestPki>>): Promise<Server> {
  const server = await pki.issue("bench-grpc-js");
  const client = await pki.issue("bench-grpc-js-client");
  const child = spawn(process.execPath, [path.join(compiledRoot, "bench/support/echo-server.js"), "grpc-js-mtls"], {
    cwd: projectRoot,
    stdio: ["ignore", "pipe", "inherit"],
    env: { ...process.env, BENCH_TLS_CA: pki.caFile, BENCH_TLS_CERT: server.certFile, BENCH_TLS_KEY: server.keyFile },
  });
  const [line] = (await once(createInterface({ input: child.stdout! }), "line")) as [string];
  return {
    name: "grpc-js, mutual TLS",
    pid: child.pid!,
    port: (JSON.parse(line) as { port: number }).port,
    ghzTls: [],
    clientTls: { ca: await readFile(pki.caFile), cert: await readFile(client.certFile), key: await readFile(client.keyFile) },
    async stop() {
      if (child.exitCode !== null) return;
      child.kill("SIGKILL");
      await once(child, "exit");
    },
  };
}

async function callsPerSecond(server: Server, durationSeconds: number): Promise<{ callsPerSecond: number; cpuMicrosPerCall: number; failed: number }> {
  const before = cpuSeconds(server.pid);
  const report = await runGhz(server.port, { call: "meshkit.echo.v1.EchoService/Echo", data: { message: "bench" }, concurrency, durationSeconds, tls: server.ghzTls });
  const ok = report.statusCodeDistribution?.OK ?? 0;
  const failures = failuresOf(report);
  for (const failure of failures.elsewhere) console.error(`  ${server.name}: ${failure}`);
  return { callsPerSecond: ok / (report.total / 1e9), cpuMicrosPerCall: ((cpuSeconds(server.pid) - before) * 1e6) / Math.max(1, ok), failed: report.count - ok - failures.cutAtEnd };
}

/** One new connection: TLS handshake with a client certificate, HTTP/2, one Echo call, close. */
async function dialOnce(server: Server): Promise<void> {
  const session = http2.connect(`https://127.0.0.1:${server.port}`, {
    createConnection: () => connect({ host: "127.0.0.1", port: server.port, ALPNProtocols: ["h2"], checkServerIdentity: () => undefined, ...server.clientTls }),
  });
  try {
    await new Promise<void>((resolve, reject) => {
      session.once("error", reject);
      const request = session.request({ ":method": "POST", ":path": echoPath, "content-type": "application/grpc", te: "trailers" });
      let status: string | undefined;
      request.on("trailers", (trailers) => (status = String(trailers["grpc-status"])));
      request.on("response", (headers) => (status ??= headers["grpc-status"] === undefined ? undefined : String(headers["grpc-status"])));
      request.on("data", () => undefined);
      request.on("end", () => (status === "0" ? resolve() : reject(new Error(`grpc-status ${status}`))));
      request.on("error", reject);
      request.end(echoBody);
    });
  } finally {
    session.destroy();
  }
}

async function connectionsPerSecond(server: Server, durationSeconds: number): Promise<{ perSecond: number; cpuMicrosPerConnection: number; failed: number }> {
  const before = cpuSeconds(server.pid);
  const started = performance.now();
  const end = started + durationSeconds * 1000;
  let done = 0;
  let failed = 0;
  await Promise.all(Array.from({ length: dialers }, async () => {
    while (performance.now() < end && failed < 100) {
      try {
        await dialOnce(server);
        done++;
      } catch {
        failed++;
      }
    }
  }));
  const elapsed = (performance.now() - started) / 1000;
  return { perSecond: done / elapsed, cpuMicrosPerConnection: ((cpuSeconds(server.pid) - before) * 1e6) / Math.max(1, done), failed };
}

async function main() {
  if (!existsSync(path.join(compiledRoot, "src/reference/services/echo/main.js"))) {
    await promisify(execFile)(path.join(projectRoot, "node_modules/.bin/tsc"), ["-p", "tsconfig.bench.json"], { cwd: projectRoot, timeout: 300_000 });
  }
  // The compiled servers look for proto/ beside them, as calls-server.bench.ts links it.
  if (!existsSync(path.join(compiledRoot, "proto"))) await symlink(path.join(projectRoot, "proto"), path.join(compiledRoot, "proto"));
  const dir = await mkdtemp(path.join(os.tmpdir(), "meshkit-bench-mesh-"));
  const pki = await createTestPki("bench-mesh");
  const destination = `echo-mesh-bench-${process.pid}`;
  const servers: Server[] = [];
  try {
    const files = await startFilesHost(pki);
    servers.push(files);
    const mesh = await startMeshHost(destination, `bench-caller-${process.pid}`, dir);
    servers.push(mesh);
    const grpcJs = await startGrpcJsMtls(pki);
    servers.push(grpcJs);
    for (const server of [files, mesh]) await callsPerSecond(server, 1); // warm-up
    for (const server of [mesh, grpcJs]) await connectionsPerSecond(server, 1);

    const ratios: number[] = [];
    const runs = new Map<string, { callsPerSecond: number; cpuMicrosPerCall: number; failed: number }[]>();
    for (let round = 1; round <= rounds; round++) {
      const order = round % 2 ? [files, mesh] : [mesh, files];
      const measured = new Map<Server, { callsPerSecond: number; cpuMicrosPerCall: number; failed: number }>();
      for (const server of order) measured.set(server, await callsPerSecond(server, seconds));
      for (const [server, result] of measured) runs.set(server.name, [...(runs.get(server.name) ?? []), result]);
      ratios.push(measured.get(mesh)!.callsPerSecond / measured.get(files)!.callsPerSecond);
      console.error(`round ${round}: files ${measured.get(files)!.callsPerSecond.toFixed(0)} calls/s, mesh ${measured.get(mesh)!.callsPerSecond.toFixed(0)} calls/s`);
    }
    const dials = new Map<string, { perSecond: number; cpuMicrosPerConnection: number; failed: number }[]>();
    for (let round = 1; round <= 3; round++) {
      for (const server of round % 2 ? [mesh, grpcJs] : [grpcJs, mesh]) dials.set(server.name, [...(dials.get(server.name) ?? []), await connectionsPerSecond(server, seconds)]);
    }

    console.log(`\nmesh identity benchmark: tiny unary, ghz, 1 connection, ${concurrency} in flight, ${rounds} alternated rounds x ${seconds} s (each server's median round)`);
    console.log("| server | calls/s | server CPU us/call | failed |\n|---|---|---|---|");
    for (const [name, results] of runs) {
      console.log(`| echo service, ${name} | ${median(results.map((r) => r.callsPerSecond)).toFixed(0)} | ${median(results.map((r) => r.cpuMicrosPerCall)).toFixed(1)} | ${results.reduce((sum, r) => sum + r.failed, 0)} |`);
    }
    const ratio = median(ratios);
    console.log(`\ntarget: mesh identity (mTLS + 50 intentions, 10 L7) >= 0.9x mutual TLS from files: ${ratio.toFixed(3)} (rounds: ${ratios.map((r) => r.toFixed(2)).join(", ")}) ${ratio >= 0.9 ? "met" : "NOT met"}`);
    console.log(`\nnew connections (TLS handshake with a client certificate + one call), ${dialers} dialers, 3 alternated rounds x ${seconds} s (median round)`);
    console.log("| server | connections/s | server CPU us/connection | failed |\n|---|---|---|---|");
    for (const [name, results] of dials) {
      console.log(`| ${name} | ${median(results.map((r) => r.perSecond)).toFixed(0)} | ${median(results.map((r) => r.cpuMicrosPerConnection)).toFixed(0)} | ${results.reduce((sum, r) => sum + r.failed, 0)} |`);
    }
  } finally {
    for (const server of servers) await server.stop();
    await consulRequest("DELETE", `/config/service-intentions/${destination}`).catch(() => undefined);
    await consulRequest("DELETE", `/config/service-defaults/${destination}`).catch(() => undefined);
  }
}

await main();
