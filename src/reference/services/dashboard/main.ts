/**
 * The dashboard: a page that draws the mesh live (services, instances, calls per method, the
 * clients' views of instances, traces, intentions, routing), and the Connect API it calls
 * (meshkit.dashboard.v1), on one port. It reads Consul, Prometheus and Jaeger itself and serves
 * browsers directly, so it runs without MESH_IDENTITY: a browser-facing edge on loopback.
 * Env (besides runService's): PROMETHEUS_URL (default http://127.0.0.1:9090), JAEGER_QUERY_URL
 * (default http://127.0.0.1:16686), DASHBOARD_INTERVAL_MS (how often the shared collector runs
 * while a page is open, default 1000), DASHBOARD_ASSETS_DIR (the page's build, default
 * .build/dashboard: `npm run build:dashboard`).
 */
import path from "node:path";
import { readEnv, type EnvReader } from "../../../platform/config.js";
import { consulAddressFromEnv } from "../../../platform/consul.js";
import { runService } from "../../../server/run-service.js";
import { createCollector } from "./collect.js";
import { readTrace } from "./jaeger-source.js";
import { dashboardRoutes } from "./routes.js";
import { staticAssets } from "./static-assets.js";

const projectRoot = path.resolve(import.meta.dirname, "../../../..");

function configure(env: EnvReader) {
  return {
    prometheusUrl: env.string("PROMETHEUS_URL", "http://127.0.0.1:9090").replace(/\/+$/, ""),
    jaegerUrl: env.string("JAEGER_QUERY_URL", "http://127.0.0.1:16686").replace(/\/+$/, ""),
    intervalMs: env.int("DASHBOARD_INTERVAL_MS", 1000, { min: 100 }),
    assetsDir: path.resolve(projectRoot, env.string("DASHBOARD_ASSETS_DIR", ".build/dashboard")),
  };
}

const consulAddress = (() => {
  const env = readEnv();
  const address = consulAddressFromEnv(env);
  return `${address.tls ? "https" : "http"}://${address.host}:${address.port}`;
})();

await runService({
  name: "dashboard",
  version: "0.1.0",
  configure,
  async start(config, { consul, log }) {
    log.info({ prometheus: config.prometheusUrl, jaeger: config.jaegerUrl, assets: config.assetsDir }, "dashboard sources");
    const collect = createCollector({ consul, consulAddress, prometheusUrl: config.prometheusUrl, jaegerUrl: config.jaegerUrl });
    return {
      routes: dashboardRoutes({ collect, intervalMs: config.intervalMs, readTrace: (traceId) => readTrace(config.jaegerUrl, traceId) }),
      httpFallback: staticAssets(config.assetsDir),
    };
  },
});
