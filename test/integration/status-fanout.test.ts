import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { StatusService } from "../../gen/meshkit/status/v1/status_pb.js";
import { eventually } from "../support/infra.js";
import { startPrivateConsul, type PrivateConsul } from "../support/private-consul.js";
import { startPrivateRedis, type PrivateRedis } from "../support/private-redis.js";
import { killProcess, startServiceProcess, type ServiceProcess } from "../support/service-process.js";

describe("WatchSystemStatus: 1,000 watchers cost what one does (issue 13, case 8)", function () {
  this.timeout(120_000);
  // A Consul and a Redis of the test's own: the load counted is this process's alone, and a
  // regression (a poll per watcher) would not hammer the shared ones.
  let consul: PrivateConsul;
  let redis: PrivateRedis;
  let status: ServiceProcess | undefined;

  before(async () => {
    [consul, redis] = await Promise.all([startPrivateConsul(), startPrivateRedis()]);
    status = await startServiceProcess("src/reference/services/status/main.ts", {
      SERVICE_NAME: `status-fanout-${randomUUID().slice(0, 8)}`,
      CONSUL_HTTP_ADDR: consul.address,
      REDIS_URL: redis.url,
      STATUS_SERVICES: "nothing-registered",
      STATUS_WATCH_INTERVAL_MS: "200",
    });
  });
  after(async () => {
    await killProcess(status);
    await redis?.close();
    await consul?.stop();
  });

  /** Redis reads of the totals (one MGET per status collected) made while `n` watchers watch for 2 s. */
  const readsWhileWatching = async (n: number) => {
    const abort = new AbortController();
    // 100 streams per connection, as HTTP/2 servers commonly allow.
    const clients = Array.from({ length: Math.ceil(n / 100) }, () => createClient(StatusService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${status!.port}` })));
    let firstAnswers = 0;
    const watchers = Array.from({ length: n }, async (_, i) => {
      let answered = false;
      try {
        // Read to the end (the abort): leaving the loop would cancel the stream.
        for await (const answer of clients[Math.floor(i / 100)]!.watchSystemStatus({}, { signal: abort.signal })) {
          if (answer.status && !answered) firstAnswers++;
          answered = true;
        }
      } catch {
        // aborted at the end
      }
    });
    await eventually(`all ${n} watchers answered`, async () => (firstAnswers === n ? true : undefined), { timeoutMs: 30_000, intervalMs: 100 });
    await redis.client.config("RESETSTAT");
    await sleep(2000);
    const stats = await redis.client.info("commandstats");
    abort.abort();
    await Promise.all(watchers);
    return Number(/^cmdstat_mget:calls=(\d+)/m.exec(stats)?.[1] ?? 0);
  };

  it("polls Consul, the mesh and Redis once per interval however many watch", async () => {
    // Measured one after the other.
    const one = await readsWhileWatching(1);
    await sleep(500); // the first feed winds down
    const thousand = await readsWhileWatching(1000);
    // Ten intervals in 2 s: about ten reads either way (one or two more where the window cuts).
    assert.ok(one >= 5 && one <= 13, `1 watcher: ${one} reads`);
    assert.ok(Math.abs(thousand - one) <= 3, `1 watcher: ${one} reads in 2 s; 1,000 watchers: ${thousand}`);
  });
});
