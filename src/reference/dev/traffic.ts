/**
 * A small traffic generator for `make up`: through the mesh client, a few calls a second to
 * every service (create, process and read orders; read users; read the status), so that the
 * dashboard, Consul, Jaeger and the metrics have something to show. It runs as a service of its
 * own ("traffic", through runService): registered in Consul with nothing to call but health, so
 * Prometheus scrapes its mesh client's metrics (its view of every instance it calls) like any
 * other service's. Stops on SIGTERM/SIGINT.
 * Env (besides runService's): TRAFFIC_INTERVAL_MS (pause between rounds, default 500),
 * TRAFFIC_CONCURRENCY (rounds running at once, default 1), TRAFFIC_ORDERS, TRAFFIC_USERS,
 * TRAFFIC_STATUS (the Consul names of the services called, default orders, user-sync, status),
 * TRAFFIC_BALANCER (default peak_ewma), TRAFFIC_ATTEMPT_TIMEOUT_MS (default 5000), AUTH_TOKEN
 * (a bearer token for commands), MESH_IDENTITY=true (call through Consul's mesh as "traffic").
 */
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { createClient } from "@connectrpc/connect";
import { OrderService } from "../../../gen/meshkit/orders/v1/orders_pb.js";
import { StatusService } from "../../../gen/meshkit/status/v1/status_pb.js";
import { UserSyncService } from "../../../gen/meshkit/users/v1/users_pb.js";
import { createMeshTransport } from "../../client/index.js";
import { bearerToken } from "../../server/interceptors/auth.js";
import type { EnvReader } from "../../platform/config.js";
import { runService } from "../../server/run-service.js";

function configure(env: EnvReader) {
  return {
    intervalMs: env.int("TRAFFIC_INTERVAL_MS", 500, { min: 10 }),
    concurrency: env.int("TRAFFIC_CONCURRENCY", 1, { min: 1, max: 64 }),
    orders: env.string("TRAFFIC_ORDERS", "orders"),
    users: env.string("TRAFFIC_USERS", "user-sync"),
    status: env.string("TRAFFIC_STATUS", "status"),
    balancer: env.string("TRAFFIC_BALANCER", "peak_ewma"),
    attemptTimeoutMs: env.int("TRAFFIC_ATTEMPT_TIMEOUT_MS", 5000, { min: 10 }),
    token: env.optionalString("AUTH_TOKEN"),
  };
}

await runService({
  name: "traffic",
  version: "0.1.0",
  configure,
  async start(config, { consul, log, mesh }) {
    // With AUTH_TOKEN set, commands carry it (services started with AUTH_TOKENS require one).
    const transports = [config.orders, config.users, config.status].map((service) =>
      createMeshTransport({
        service,
        consul,
        balancer: config.balancer,
        attemptTimeoutMs: config.attemptTimeoutMs,
        interceptors: config.token ? [bearerToken(config.token)] : [],
        ...(mesh ? { mesh } : {}),
      }),
    );
    const [orders, users, status] = [createClient(OrderService, transports[0]!), createClient(UserSyncService, transports[1]!), createClient(StatusService, transports[2]!)];

    let running = true;
    let tick = 0;
    const round = async () => {
      while (running) {
        const n = ++tick;
        try {
          const { order } = await orders.createOrder({ idempotencyKey: randomUUID(), userId: `u${n % 50}`, product: "widget", quantity: 1 + (n % 3), amountCents: 999n });
          await orders.getOrder({ id: order!.id });
          if (n % 5 === 0) await orders.processOrders({ limit: 10 });
          if (n % 3 === 0) await users.listUsers({ pageSize: 5 });
          if (n % 10 === 0) {
            const { status: system } = await status.getSystemStatus({});
            log.info({ users: Number(system?.totalUsers ?? 0), orders: Number(system?.totalOrders ?? 0) }, "system status");
          }
        } catch (error) {
          log.warn({ err: error }, "call failed");
        }
        await sleep(config.intervalMs);
      }
    };
    const rounds = Array.from({ length: config.concurrency }, () => round());
    return {
      // Nothing to serve but health (and /metrics): the host mounts those by itself.
      routes: () => undefined,
      async stop() {
        running = false;
        await Promise.all(rounds);
        for (const transport of transports) transport.close();
      },
    };
  },
});
