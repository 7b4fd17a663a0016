/**
 * A small traffic generator for `make up`: through the mesh client, a few calls a second to
 * every service (create, process and read orders; read users; read the status), so that the
 * Consul UI, Jaeger and the metrics have something to show. Stops on SIGTERM/SIGINT.
 * Env: TRAFFIC_INTERVAL_MS (default 500), CONSUL_HTTP_ADDR, AUTH_TOKEN (a bearer token for commands),
 * MESH_IDENTITY=true (call through Consul's mesh as the service "traffic", with its own leaf).
 */
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { createClient } from "@connectrpc/connect";
import { OrderService } from "../../../gen/meshkit/orders/v1/orders_pb.js";
import { StatusService } from "../../../gen/meshkit/status/v1/status_pb.js";
import { UserSyncService } from "../../../gen/meshkit/users/v1/users_pb.js";
import { createMeshTransport } from "../../client/index.js";
import { bearerToken } from "../../server/interceptors/auth.js";
import { readEnv } from "../../platform/config.js";
import { consulAddressFromEnv, createConsulClient } from "../../platform/consul.js";
import { createLogger } from "../../platform/log.js";
import { meshIdentity } from "../../platform/mesh/identity.js";
import { startTelemetry } from "../../platform/telemetry.js";

const env = readEnv();
const intervalMs = env.int("TRAFFIC_INTERVAL_MS", 500, { min: 10 });
const token = env.optionalString("AUTH_TOKEN");
const meshOn = env.string("MESH_IDENTITY", "false") === "true";
const consul = createConsulClient(consulAddressFromEnv(env));
env.done();
const telemetry = startTelemetry({ serviceName: "traffic" });
const log = createLogger("traffic");
// With AUTH_TOKEN set, commands carry it (services started with AUTH_TOKENS require one).
const mesh = meshOn ? meshIdentity(consul, { service: "traffic" }) : undefined;
const transports = ["orders", "user-sync", "status"].map((service) => createMeshTransport({ service, consul, interceptors: token ? [bearerToken(token)] : [], ...(mesh ? { mesh } : {}) }));
const [orders, users, status] = [createClient(OrderService, transports[0]!), createClient(UserSyncService, transports[1]!), createClient(StatusService, transports[2]!)];

let running = true;
const stop = () => (running = false);
process.once("SIGTERM", stop);
process.once("SIGINT", stop);

let tick = 0;
while (running) {
  tick++;
  try {
    const { order } = await orders.createOrder({ idempotencyKey: randomUUID(), userId: `u${tick % 50}`, product: "widget", quantity: 1 + (tick % 3), amountCents: 999n });
    await orders.getOrder({ id: order!.id });
    if (tick % 5 === 0) await orders.processOrders({ limit: 10 });
    if (tick % 3 === 0) await users.listUsers({ pageSize: 5 });
    if (tick % 10 === 0) {
      const { status: system } = await status.getSystemStatus({});
      log.info({ users: Number(system?.totalUsers ?? 0), orders: Number(system?.totalOrders ?? 0) }, "system status");
    }
  } catch (error) {
    log.warn({ err: error }, "call failed");
  }
  await sleep(intervalMs);
}
for (const transport of transports) transport.close();
mesh?.close();
await telemetry.shutdown();
