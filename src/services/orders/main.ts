import { startProjector } from "../../events/projector.js";
import { startOutboxRelay } from "../../events/relay.js";
import { runService } from "../../server/run-service.js";
import { dataStoresConfigFromEnv, openDataStores } from "../data-stores.js";
import { ordersStream } from "./commands.js";
import { projectOrders } from "./projection.js";
import { orderRoutes } from "./routes.js";

await runService({
  name: process.env.SERVICE_NAME ?? "orders",
  version: "0.1.0",
  configure: dataStoresConfigFromEnv,
  async start(config, { instanceId, log }) {
    const stores = await openDataStores(config, log);
    const relay = startOutboxRelay({ pool: stores.pool, redis: stores.redis, streams: [ordersStream], log });
    const projector = startProjector({
      redis: stores.projectionRedis,
      stream: ordersStream,
      group: "orders-read-model",
      consumer: instanceId,
      log,
      apply: (events) => projectOrders(stores.redis, events),
    });
    return {
      routes: orderRoutes({ pool: stores.pool, redis: stores.redis, eventsWritten: relay.kick }),
      healthCheck: stores.checkPostgres,
      async stop() {
        await relay.stop();
        await projector.stop();
        await stores.close();
      },
    };
  },
});
