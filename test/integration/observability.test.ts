import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { once } from "node:events";
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { createClient } from "@connectrpc/connect";
import { Registry } from "prom-client";
import { OrderService } from "../../gen/meshkit/orders/v1/orders_pb.js";
import { StatusService } from "../../gen/meshkit/status/v1/status_pb.js";
import { createMeshTransport, type MeshTransport } from "../../src/client/index.js";
import { consul, consulAddress, eventually, jaegerQueryUrl } from "../support/infra.js";
import { startTestTelemetry, testCallerName } from "../support/telemetry.js";
import { killProcess, projectRoot, startServiceProcess, type ServiceProcess } from "../support/service-process.js";
import { freePort } from "../support/free-port.js";

interface Series {
  metric: Record<string, string>;
  value: [number, string];
}

/** Every PromQL expression of the shipped dashboard. */
async function dashboardExpressions(): Promise<string[]> {
  const dashboard = JSON.parse(await readFile(path.join(projectRoot, "deploy/grafana/meshkit-overview.json"), "utf8")) as { panels: { targets: { expr: string }[] }[] };
  return dashboard.panels.flatMap((panel) => panel.targets.map((target) => target.expr));
}

/** Every alert expression of the shipped rules, its final comparison made a `bool` one, so it returns data when healthy too. */
async function ruleExpressions(): Promise<string[]> {
  const text = await readFile(path.join(projectRoot, "deploy/prometheus/alerts.yml"), "utf8");
  const expressions = [...text.matchAll(/expr: \|?\n?([\s\S]*?)\n\s+for:/g)].map((match) => match[1]!.replace(/\s+/g, " ").trim());
  return expressions.map((expr) => expr.replace(/ (==|>|<) ([\d.]+)$/, " $1 bool $2"));
}

describe("observability: Prometheus finds every instance through Consul and every panel and rule has data", function () {
  this.timeout(180_000);
  const run = randomUUID().slice(0, 8);
  const names = { orders: `orders-obs-${run}`, users: `user-sync-obs-${run}`, status: `status-obs-${run}` };
  const services: ServiceProcess[] = [];
  const transports: MeshTransport[] = [];
  let prometheus: ChildProcess | undefined;
  let prometheusUrl = "";
  let traffic = true;
  let trafficDone: Promise<void> | undefined;

  const query = async (expr: string): Promise<Series[]> => {
    const response = await fetch(`${prometheusUrl}/api/v1/query?query=${encodeURIComponent(expr)}`);
    const body = (await response.json()) as { status: string; error?: string; data: { result: Series[] } };
    if (body.status !== "success") throw new Error(`${expr}: ${body.error}`);
    return body.data.result;
  };

  before(async () => {
    startTestTelemetry();
    const common = { CONSUL_CHECK_INTERVAL: "1s" };
    services.push(
      ...(await Promise.all([
        startServiceProcess("src/reference/services/orders/main.ts", { ...common, SERVICE_NAME: names.orders }),
        startServiceProcess("src/reference/services/users/main.ts", { ...common, SERVICE_NAME: names.users, SYNC_INTERVAL_MS: "0" }),
        startServiceProcess("src/reference/services/status/main.ts", { ...common, SERVICE_NAME: names.status, STATUS_SERVICES: `${names.users},${names.orders}` }),
      ])),
    );
    // Traffic through the mesh client, a few calls a second, until the test ends.
    const ordersTransport = createMeshTransport({ service: names.orders, consul, metrics: new Registry() });
    const statusTransport = createMeshTransport({ service: names.status, consul, metrics: new Registry() });
    transports.push(ordersTransport, statusTransport);
    const orders = createClient(OrderService, ordersTransport);
    const status = createClient(StatusService, statusTransport);
    trafficDone = (async () => {
      for (let n = 0; traffic; n++) {
        await orders.createOrder({ idempotencyKey: `obs-${run}-${n}`, userId: "u", product: "p", quantity: 1, amountCents: 5n }).catch(() => undefined);
        await status.getSystemStatus({}).catch(() => undefined);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    })();

    // The shipped configuration, pointed at this run's Consul and with a port and storage of its own.
    const dir = await mkdtemp(path.join(os.tmpdir(), "meshkit-prometheus-"));
    const shipped = await readFile(path.join(projectRoot, "deploy/prometheus/prometheus.yml"), "utf8");
    await writeFile(path.join(dir, "prometheus.yml"), shipped.replace("server: 127.0.0.1:8500", `server: ${consulAddress.host}:${consulAddress.port}`));
    await writeFile(path.join(dir, "alerts.yml"), await readFile(path.join(projectRoot, "deploy/prometheus/alerts.yml")));
    const port = await freePort();
    prometheusUrl = `http://127.0.0.1:${port}`;
    prometheus = spawn("prometheus", [`--config.file=${path.join(dir, "prometheus.yml")}`, `--storage.tsdb.path=${path.join(dir, "data")}`, `--web.listen-address=127.0.0.1:${port}`], { stdio: "ignore" });
  });

  after(async () => {
    traffic = false;
    await trafficDone;
    for (const transport of transports) transport.close();
    await Promise.all(services.map(killProcess));
    if (prometheus && prometheus.exitCode === null) {
      const exited = once(prometheus, "exit");
      prometheus.kill("SIGTERM");
      await exited;
    }
  });

  it("traces a call from a caller through the mesh into orders and its PostgreSQL queries, read back from Jaeger", async () => {
    interface JaegerTrace {
      processes: Record<string, { serviceName: string; tags: { key: string; value: unknown }[] }>;
      spans: { processID: string; operationName: string; tags: { key: string; value: unknown }[] }[];
    }
    const trace = await eventually("a traced CreateOrder in Jaeger", async () => {
      const response = await fetch(`${jaegerQueryUrl}/api/traces?service=${names.orders}&operation=${encodeURIComponent("meshkit.orders.v1.OrderService/CreateOrder")}&limit=20`);
      const body = (await response.json()) as { data: JaegerTrace[] };
      return body.data.find((t) => Object.values(t.processes).some((p) => p.serviceName === testCallerName));
    });
    const tagOf = (span: JaegerTrace["spans"][number], key: string) => span.tags.find((tag) => tag.key === key)?.value;
    const serviceNames = new Set(Object.values(trace.processes).map((p) => p.serviceName));
    assert.ok(serviceNames.has(testCallerName) && serviceNames.has(names.orders), [...serviceNames].join(", "));
    const dbSpans = trace.spans.filter((span) => tagOf(span, "db.system") === "postgresql" || tagOf(span, "db.system.name") === "postgresql");
    assert.ok(dbSpans.length >= 2, `PostgreSQL spans: ${trace.spans.map((s) => s.operationName).join(", ")}`);
    assert.ok(dbSpans.every((span) => trace.processes[span.processID]!.serviceName === names.orders));
    // The spans name the instance that served them by its Consul service id.
    const ordersProcess = Object.values(trace.processes).find((p) => p.serviceName === names.orders)!;
    assert.equal(ordersProcess.tags.find((tag) => tag.key === "service.instance.id")?.value, services[0]!.instanceId);
  });

  it("discovers each instance through Consul and scrapes it (up == 1)", async () => {
    for (const service of Object.values(names)) {
      await eventually(`up == 1 for ${service}`, async () => {
        const series = await query(`up{job="meshkit", service="${service}"}`);
        return series.length === 1 && series[0]!.value[1] === "1" ? true : undefined;
      }, { timeoutMs: 60_000, intervalMs: 1000 });
    }
  });

  it("serves the seed's domain metrics and the RED metrics at /metrics", async () => {
    const text = await (await fetch(`http://127.0.0.1:${services[0]!.port}/metrics`)).text();
    for (const name of ["order_processing_count_total", "order_processing_duration_seconds_bucket", "meshkit_server_call_duration_seconds_count", "process_cpu_seconds_total"]) {
      assert.match(text, new RegExp(`^${name}`, "m"), `${name} missing`);
    }
    const users = await (await fetch(`http://127.0.0.1:${services[1]!.port}/metrics`)).text();
    assert.match(users, /^user_sync_count_total\{status="success"\}/m);
  });

  it("has data for every PromQL expression of the dashboard and the alert rules while traffic runs", async () => {
    const rules = await ruleExpressions();
    assert.equal(rules.length, 9, `the rule file's expressions were not all found: ${rules.join(" | ")}`);
    const expressions = [...(await dashboardExpressions()), ...rules];
    // rate() over the panels' windows needs two scrapes of traffic: wait for them.
    await eventually("every expression to return data", async () => {
      const empty: string[] = [];
      for (const expr of expressions) if ((await query(expr)).length === 0) empty.push(expr);
      return empty.length === 0 ? true : undefined;
    }, { timeoutMs: 90_000, intervalMs: 2000 }).catch(async (error: Error) => {
      const empty: string[] = [];
      for (const expr of expressions) if ((await query(expr)).length === 0) empty.push(expr);
      throw new Error(`${error.message}; still empty:\n  ${empty.join("\n  ")}`);
    });
  });
});
