import { execFile } from "node:child_process";
import { rm, symlink } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { projectRoot } from "../../test/support/service-process.js";

/**
 * Where tsconfig.bench.json puts the JavaScript benchmarks run as users run theirs: compiled by
 * tsc, not through tsx (whose esbuild `keepNames` wraps every named closure, and whose loader
 * adds its own megabytes to the heap every full collection walks).
 */
export const compiledRoot = path.join(projectRoot, ".bench-build");

/**
 * Compiles what tsconfig.bench.json includes (src, gen, bench/support, the client bench) into
 * `compiledRoot`, afresh. The compiled programs look for proto/ in that folder, as their sources
 * do in the project's: a link there to the project's own.
 */
export async function compileForBench(): Promise<void> {
  await rm(compiledRoot, { recursive: true, force: true });
  await promisify(execFile)(path.join(projectRoot, "node_modules/.bin/tsc"), ["-p", "tsconfig.bench.json"], { cwd: projectRoot, timeout: 300_000 });
  await symlink(path.join(projectRoot, "proto"), path.join(compiledRoot, "proto"));
}
