import { createHash } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import type http from "node:http";
import path from "node:path";
import { gzipSync } from "node:zlib";

const contentTypes: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".json": "application/json",
  ".map": "application/json",
};

interface Asset {
  type: string;
  body: Buffer;
  gzipped: Buffer;
  etag: string;
}

/**
 * staticAssets serves the files of `dir` (the page's build, read once, gzipped once) to GET and
 * HEAD requests: `/` is `index.html`, `/<file>` the file. Anything else is left to the caller
 * (false). Answers carry an ETag and `cache-control: no-cache` (revalidated on each load; the
 * build's file names do not change). Without a build the page says how to make one (503).
 */
export function staticAssets(dir: string): (request: http.IncomingMessage, response: http.ServerResponse) => boolean {
  const assets = new Map<string, Asset>();
  const load = (folder: string, prefix: string) => {
    for (const name of readdirSync(folder)) {
      const file = path.join(folder, name);
      if (statSync(file).isDirectory()) {
        load(file, `${prefix}${name}/`);
        continue;
      }
      const body = readFileSync(file);
      assets.set(`/${prefix}${name}`, {
        type: contentTypes[path.extname(name)] ?? "application/octet-stream",
        body,
        gzipped: gzipSync(body, { level: 9 }),
        etag: `"${createHash("sha256").update(body).digest("base64url").slice(0, 22)}"`,
      });
    }
  };
  let missing: string | undefined;
  try {
    load(dir, "");
  } catch (error) {
    missing = `The dashboard's page is not built (${(error as Error).message}). Build it with: npm run build:dashboard`;
  }

  return (request, response) => {
    if (request.method !== "GET" && request.method !== "HEAD") return false;
    const pathname = (request.url ?? "/").split("?")[0]!;
    if (missing !== undefined) {
      if (pathname !== "/") return false;
      response.writeHead(503, { "content-type": "text/plain; charset=utf-8" });
      response.end(missing);
      return true;
    }
    const asset = assets.get(pathname === "/" ? "/index.html" : pathname);
    if (!asset) return false;
    const headers: Record<string, string> = {
      "content-type": asset.type,
      etag: asset.etag,
      "cache-control": "no-cache",
      "x-content-type-options": "nosniff",
      vary: "accept-encoding",
    };
    if (request.headers["if-none-match"] === asset.etag) {
      response.writeHead(304, headers);
      response.end();
      return true;
    }
    const gzip = /\bgzip\b/.test(String(request.headers["accept-encoding"] ?? ""));
    const body = gzip ? asset.gzipped : asset.body;
    response.writeHead(200, { ...headers, ...(gzip ? { "content-encoding": "gzip" } : {}), "content-length": String(body.length) });
    response.end(request.method === "HEAD" ? undefined : body);
    return true;
  };
}
