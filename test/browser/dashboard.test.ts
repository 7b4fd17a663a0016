/**
 * The dashboard in a real browser: headless Chromium (Debian's, driven by puppeteer-core) on the
 * page the dashboard service serves, against a mesh this test starts as real processes (two
 * orders, one user-sync, one status, the traffic generator as the calling client, the
 * dashboard) and a Prometheus of its own scraping them every second, with the shared Consul and
 * Jaeger. Screenshots of each state go to .run/dashboard-*.png.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import puppeteer, { type Browser, type Page } from "puppeteer-core";
import { consulAddress } from "../support/infra.js";
import { startPrivatePrometheus, type PrivatePrometheus } from "../support/private-prometheus.js";
import { killProcess, projectRoot, startServiceProcess, type ServiceProcess } from "../support/service-process.js";

const chromium = "/usr/bin/chromium";
const shots = path.join(projectRoot, ".run");

describe("dashboard in a browser: the mesh live over Connect-Web", function () {
  this.timeout(240_000);
  const run = randomUUID().slice(0, 8);
  const names = { orders: `orders-dash-${run}`, users: `user-sync-dash-${run}`, status: `status-dash-${run}`, traffic: `traffic-dash-${run}`, dashboard: `dashboard-dash-${run}` };
  const processes: ServiceProcess[] = [];
  let orders: ServiceProcess[] = [];
  let prometheus: PrivatePrometheus | undefined;
  let browser: Browser | undefined;
  let profile = "";
  let page: Page;
  let url = "";

  const shot = (name: string) => page.screenshot({ path: path.join(shots, `dashboard-${name}.png`), fullPage: true });
  /** Waits until `predicate` holds in the page, or fails with what the page showed. */
  const until = async (what: string, predicate: string, timeoutMs: number, arg?: unknown) => {
    try {
      await page.waitForFunction(predicate, { timeout: timeoutMs, polling: 200 }, arg);
    } catch (error) {
      await shot(`failed-${what.replace(/\W+/g, "-")}`).catch(() => undefined);
      const text = String(await page.evaluate("document.body.innerText").catch(() => ""));
      throw new Error(`${what}: ${(error as Error).message}\npage:\n${text.slice(0, 3000)}`, { cause: error });
    }
  };

  before(async function () {
    if (!existsSync(chromium)) throw new Error(`${chromium} is missing: scripts/setup.sh installs Debian's chromium`);
    await mkdir(shots, { recursive: true });
    if (!existsSync(path.join(projectRoot, ".build/dashboard/app.js"))) {
      await promisify(execFile)(process.execPath, ["--import", "tsx", "scripts/build-dashboard.ts"], { cwd: projectRoot, timeout: 120_000 });
    }
    prometheus = await startPrivatePrometheus(consulAddress, Object.values(names));
    const common = { CONSUL_CHECK_INTERVAL: "1s" };
    orders = await Promise.all([0, 1].map(() => startServiceProcess("src/reference/services/orders/main.ts", { ...common, SERVICE_NAME: names.orders })));
    processes.push(
      ...orders,
      ...(await Promise.all([
        startServiceProcess("src/reference/services/users/main.ts", { ...common, SERVICE_NAME: names.users, SYNC_INTERVAL_MS: "0" }),
        startServiceProcess("src/reference/services/status/main.ts", { ...common, SERVICE_NAME: names.status, STATUS_SERVICES: `${names.users},${names.orders}` }),
      ])),
    );
    // The calling client: round robin, so a hung instance keeps getting its share of attempts,
    // each given up after 250 ms (as the chaos test of hung instances does).
    processes.push(
      await startServiceProcess("src/reference/dev/traffic.ts", {
        ...common,
        SERVICE_NAME: names.traffic,
        TRAFFIC_ORDERS: names.orders,
        TRAFFIC_USERS: names.users,
        TRAFFIC_STATUS: names.status,
        TRAFFIC_BALANCER: "round_robin",
        TRAFFIC_ATTEMPT_TIMEOUT_MS: "250",
        TRAFFIC_CONCURRENCY: "3",
        TRAFFIC_INTERVAL_MS: "200",
      }),
    );
    const dashboard = await startServiceProcess("src/reference/services/dashboard/main.ts", { ...common, SERVICE_NAME: names.dashboard, PROMETHEUS_URL: prometheus.url });
    processes.push(dashboard);
    url = `http://127.0.0.1:${dashboard.port}/`;

    profile = await mkdtemp(path.join(os.tmpdir(), "meshkit-chromium-"));
    browser = await puppeteer.launch({
      executablePath: chromium,
      headless: true,
      userDataDir: profile,
      // The network is closed here: without these Chromium waits on lookups it cannot make.
      args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    });
    page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 800 });
  });

  after(async () => {
    await browser?.close().catch(() => undefined);
    if (profile) await rm(profile, { recursive: true, force: true });
    for (const instance of orders) instance.signal("SIGCONT");
    await Promise.all(processes.map(killProcess));
    await prometheus?.stop();
  });

  it("lists the reference services with their instance counts and non-zero calls/s", async () => {
    const errors: string[] = [];
    page.on("pageerror", (error) => errors.push(String(error)));
    await page.goto(url);
    const expected = { [names.orders]: 2, [names.users]: 1, [names.status]: 1, [names.traffic]: 1, [names.dashboard]: 1 };
    await until(
      "every service with its instances, the called ones with calls",
      `(() => {
        const expected = ${JSON.stringify(expected)};
        const called = ${JSON.stringify([names.orders, names.users, names.status])};
        return Object.entries(expected).every(([name, count]) => {
          const row = document.querySelector(\`tr[data-service="\${name}"]\`);
          return row && row.dataset.instances === String(count) && row.querySelectorAll(".pill.passing").length === 1 &&
            (!called.includes(name) || Number(row.querySelector("[data-rps]").dataset.rps) > 0);
        });
      })()`,
      60_000,
    );
    assert.equal(await page.$eval(".live", (element) => element.getAttribute("data-state")), "live");
    assert.deepEqual(errors, []);
    await shot("overview");
  });

  it("shows a SIGSTOPped orders instance critical and the calling client's breaker for it open within 10 s, closed again after SIGCONT", async () => {
    await page.goto(`${url}#/services/${names.orders}`);
    const hung = orders[0]!;
    const selectors = {
      instance: `tr[data-instance="${hung.instanceId}"]`,
      endpoint: `[data-client="${names.traffic}"] tr[data-endpoint="${hung.instanceId}"]`,
    };
    await until("the client's view of both orders instances, closed", `document.querySelectorAll('[data-client="${names.traffic}"] tr[data-breaker="closed"]').length === 2`, 30_000);
    await shot("orders-healthy");

    hung.signal("SIGSTOP");
    const stopped = Date.now();
    try {
      await until(
        "the hung instance critical and the client's breaker for it open",
        `document.querySelector('${selectors.instance}')?.dataset.health === "critical" && document.querySelector('${selectors.endpoint}')?.dataset.breaker === "open"`,
        10_000,
      );
      console.log(`      critical and open on the page ${Date.now() - stopped} ms after SIGSTOP`);
      await shot("orders-instance-hung");
    } finally {
      hung.signal("SIGCONT");
    }
    const resumed = Date.now();
    await until(
      "the instance passing and the client's breaker closed, in its pool",
      `document.querySelector('${selectors.instance}')?.dataset.health === "passing" && document.querySelector('${selectors.endpoint}')?.dataset.breaker === "closed" && document.querySelector('${selectors.endpoint}')?.dataset.inPool === "true"`,
      30_000,
    );
    console.log(`      passing and closed again ${Date.now() - resumed} ms after SIGCONT`);
    await shot("orders-instance-back");
  });

  it("draws a GetSystemStatus trace as a waterfall across the services it touched, a span's attributes on click", async () => {
    await page.goto(`${url}#/services/${names.status}`);
    await until("a GetSystemStatus trace in the list", `!!document.querySelector('tr[data-root$="GetSystemStatus"] a')`, 60_000);
    await page.click('tr[data-root$="GetSystemStatus"] a');
    await until("the waterfall", `!!document.querySelector(".waterfall [data-span]")`, 20_000);
    const drawn = (await page.evaluate(`(() => {
      const element = document.querySelector(".waterfall");
      return {
        services: (element.getAttribute("data-services") ?? "").split(","),
        depths: [...element.querySelectorAll("[data-span]")].map((span) => Number(span.getAttribute("data-depth"))),
        bars: element.querySelectorAll(".bar").length,
      };
    })()`)) as { services: string[]; depths: number[]; bars: number };
    for (const name of [names.traffic, names.status, names.users, names.orders]) assert.ok(drawn.services.includes(name), `${name} not in ${drawn.services.join(", ")}`);
    assert.ok(drawn.bars >= 4, `${drawn.bars} bars`);
    assert.ok(Math.max(...drawn.depths) >= 2, `depths ${drawn.depths.join(",")}`);
    await page.click(".waterfall [data-span] button");
    await until("the span's attributes", `!!document.querySelector(".waterfall .attributes dt")`, 5000);
    const attributes = await page.$eval(".waterfall .attributes", (element) => element.textContent ?? "");
    assert.match(attributes, /rpc\.method|rpc\.service/);
    const overflow = Number(await page.evaluate("document.documentElement.scrollWidth - window.innerWidth"));
    assert.ok(overflow <= 1, `the page is ${overflow} px wider than 1280`);
    await shot("trace-waterfall");
  });

  it("is usable at a phone's width and from the keyboard", async () => {
    // setViewport reloads the page when isMobile changes (puppeteer), here the previous test's
    // trace URL: a reload that could land after a hash-only goto. A blank page first, then a
    // whole navigation to the orders detail.
    await page.setViewport({ width: 390, height: 844, isMobile: true });
    await page.goto("about:blank");
    await page.goto(`${url}#/services/${names.orders}`);
    await until("the orders detail", `!!document.querySelector('[data-detail="${names.orders}"] tr[data-instance]')`, 30_000);
    const overflow = Number(await page.evaluate("document.documentElement.scrollWidth - window.innerWidth"));
    assert.ok(overflow <= 1, `the page is ${overflow} px wider than the screen`);
    await shot("phone");
    await page.setViewport({ width: 1280, height: 800 });
    // Tab from the top reaches a service link; Enter opens it.
    await page.goto(url);
    await until("the services", `!!document.querySelector('tr[data-service="${names.users}"] a')`, 30_000);
    let focused = "";
    for (let i = 0; i < 40 && focused !== names.users; i++) {
      await page.keyboard.press("Tab");
      focused = String(await page.evaluate('document.activeElement?.textContent ?? ""'));
    }
    assert.equal(focused, names.users);
    await page.keyboard.press("Enter");
    await until("the user-sync detail after Enter", `!!document.querySelector('[data-detail="${names.users}"]')`, 10_000);
  });

  it("keeps its own JavaScript within 250 KB gzipped", async () => {
    const response = await fetch(`${url}app.js`, { headers: { "accept-encoding": "gzip" } });
    assert.equal(response.headers.get("content-encoding"), "gzip");
    const size = Number(response.headers.get("content-length"));
    console.log(`      app.js: ${(size / 1024).toFixed(1)} KB gzipped`);
    assert.ok(size > 0 && size <= 250 * 1024, `${size} bytes`);
  });

  it("names Prometheus in a banner when it stops, and still lists the services", async () => {
    await page.goto(url);
    await until("the services", `!!document.querySelector('tr[data-service="${names.orders}"]')`, 30_000);
    await prometheus!.stop();
    await until("the Prometheus banner", `!!document.querySelector('.banner[data-source="prometheus"]')`, 15_000);
    const banner = await page.$eval('.banner[data-source="prometheus"]', (element) => element.textContent ?? "");
    assert.match(banner, /Prometheus is out of reach/);
    assert.equal(await page.$eval(`tr[data-service="${names.orders}"]`, (row) => row.getAttribute("data-instances")), "2");
    await shot("prometheus-down");
  });
});
