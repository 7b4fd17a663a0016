import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const projectRoot = path.resolve(import.meta.dirname, "../..");
const manifest = JSON.parse(readFileSync(path.join(projectRoot, "package.json"), "utf8")) as { exports: Record<string, string | { default: string }> };

/** The package's entries (`./client`, ...) and the sources they are built from. */
const entries = Object.entries(manifest.exports)
  .filter(([subpath]) => subpath !== "./package.json")
  .map(([subpath, target]) => {
    const built = typeof target === "string" ? target : target.default;
    // dist/src/client/index.js is built from src/client/index.ts (tsconfig.build.json, rootDir ".").
    const source = built.replace(/^\.\/dist\//, "").replace(/\.js$/, ".ts");
    return { subpath, source: path.join(projectRoot, source) };
  });

/**
 * Runs in a child process: imports one entry, then reports what the import left running (timers,
 * sockets, servers, requests) and whether an OpenTelemetry global (tracer provider, propagator,
 * context manager) was installed.
 */
const probe = `
import { createHook } from "node:async_hooks";
// Every async resource the import creates (timers, unref'd ones too, sockets, servers, file
// requests), minus those destroyed again: what is left after a moment is still running.
const created = new Map();
Error.stackTraceLimit = 50;
let importing = true;
createHook({
  init(id, type) {
    // DNSCHANNEL: Node creates its default c-ares channel when anything first loads node:dns;
    // it is an idle object (no socket, no timer until a query) that never keeps a process alive.
    if (!importing || type === "PROMISE" || type === "DNSCHANNEL") return;
    // What the TypeScript loader this probe runs under creates for itself (tsx's hooks thread,
    // esbuild's transform worker, each with its message ports, when tsx's cache misses) is not
    // the package's doing: a consumer of the built package runs neither. Those have tsx or
    // esbuild in their stack, or no frame of a module file at all (only this probe's [eval]).
    const stack = new Error().stack ?? "";
    if (stack.includes("/node_modules/tsx/") || stack.includes("/node_modules/esbuild/")) return;
    const frames = stack.split("\\n").slice(1).filter((frame) => !frame.includes("[eval"));
    if (frames.some((frame) => frame.includes("file://") || frame.includes("(/"))) created.set(id, type);
  },
  destroy(id) {
    created.delete(id);
  },
}).enable();
await import(process.env.ENTRY_URL);
importing = false;
// Let one-shot work of the module loader (file reads of its cache) finish first.
await new Promise((resolve) => setTimeout(resolve, 300));
const left = [...created.values()];
const otel = globalThis[Symbol.for("opentelemetry.js.api.1")];
console.log(JSON.stringify({ left, otelGlobals: otel ? Object.keys(otel).filter((key) => key !== "version") : [] }));
`;

describe("package entries", () => {
  it("lists the entries the package exports", () => {
    assert.deepEqual(
      entries.map((entry) => entry.subpath),
      Object.keys(manifest.exports).filter((subpath) => subpath !== "./package.json"),
    );
    assert.ok(entries.length >= 3, "client, server and platform at least");
  });

  for (const { subpath, source } of entries) {
    it(`importing meshkit${subpath.slice(1)} starts nothing: no timer, no socket, no OpenTelemetry SDK, and the process exits by itself`, async function () {
      this.timeout(30_000);
      const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", probe], {
        cwd: projectRoot,
        env: { ...process.env, ENTRY_URL: pathToFileURL(source).href },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
      child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
      let reportedAt = 0;
      child.stdout.once("data", () => (reportedAt = performance.now()));
      // A module that started a timer or a socket keeps the process alive: it would not exit.
      const exitTimeout = setTimeout(() => child.kill("SIGKILL"), 15_000);
      const [code, signal] = (await once(child, "exit")) as [number | null, NodeJS.Signals | null];
      clearTimeout(exitTimeout);
      assert.equal(signal, null, `the process did not exit by itself after importing ${subpath}\n${stdout}${stderr}`);
      assert.equal(code, 0, stderr);
      assert.ok(performance.now() - reportedAt < 2_000, "exited at once after the import");
      const report = JSON.parse(stdout.trim().split("\n").pop()!) as { left: string[]; otelGlobals: string[] };
      assert.deepEqual(report.left, [], `the import left these running: ${report.left.join(", ")}`);
      assert.deepEqual(report.otelGlobals, [], "the import registered OpenTelemetry globals (an SDK started)");
    });
  }
});
