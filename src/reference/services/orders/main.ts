import { service } from "./telemetry.js"; // first: see telemetry.ts
import { runService } from "../../../server/run-service.js";
import { dataStoresConfigFromEnv, openDataStores, startEventPipeline } from "../../stores/data-stores.js";
import { ordersStream } from "./commands.js";
import { snapshotOrders } from "./snapshot.js";
import { projectOrders } from "./projection.js";
import { orderRoutes } from "./routes.js";

await runService({
  name: service.name,
  version: service.version,
  configure: dataStoresConfigFromEnv,
  async start(config, { instanceId, log }) {
    const stores = await openDataStores(config, log);
    const events = startEventPipeline(stores, { stream: ordersStream, group: "orders-read-model", instanceId, log, project: projectOrders, snapshot: snapshotOrders });
    return {
      routes: orderRoutes({ pool: stores.pool, redis: stores.redis, eventsWritten: events.kick }),
      healthCheck: stores.checkPostgres,
      async stop() {
        await events.stop();
        await stores.close();
      },
    };
  },
});
