/**
 * Builds the dashboard's page (src/reference/services/dashboard/ui) with esbuild into
 * .build/dashboard/ (ignored by git; the dashboard service serves it): index.html, app.js (one
 * ES module: the page, Preact, uPlot, connect-web and the generated messages, minified) and
 * app.css. Fails when the page's JavaScript exceeds its budget of 250 KB gzipped.
 * Run: npm run build:dashboard (scripts/up.sh and the browser test do when it is missing).
 */
import { copyFile, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { gzipSync } from "node:zlib";
import { build } from "esbuild";

const root = path.resolve(import.meta.dirname, "..");
const ui = path.join(root, "src/reference/services/dashboard/ui");
const out = path.join(root, ".build/dashboard");
const budgetBytes = 250 * 1024;

await rm(out, { recursive: true, force: true });
await mkdir(out, { recursive: true });
const result = await build({
  entryPoints: { app: path.join(ui, "main.tsx") },
  bundle: true,
  minify: true,
  format: "esm",
  target: ["chrome115", "firefox115", "safari16"],
  outdir: out,
  jsx: "automatic",
  jsxImportSource: "preact",
  tsconfig: path.join(ui, "tsconfig.json"),
  legalComments: "none",
  metafile: true,
  logLevel: "warning",
});
await copyFile(path.join(ui, "index.html"), path.join(out, "index.html"));
await writeFile(path.join(out, "meta.json"), JSON.stringify(result.metafile));

const js = await readFile(path.join(out, "app.js"));
const gzipped = gzipSync(js, { level: 9 }).length;
const css = await readFile(path.join(out, "app.css"));
console.log(`dashboard page built into ${path.relative(root, out)}/: app.js ${(js.length / 1024).toFixed(1)} KB (${(gzipped / 1024).toFixed(1)} KB gzipped), app.css ${(css.length / 1024).toFixed(1)} KB`);
if (gzipped > budgetBytes) {
  console.error(`app.js is ${(gzipped / 1024).toFixed(1)} KB gzipped, over the page's budget of ${budgetBytes / 1024} KB`);
  process.exit(1);
}
