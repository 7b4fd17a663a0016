import type { ConnectRouter } from "@connectrpc/connect";
import { OrderService } from "../../../../gen/meshkit/orders/v1/orders_pb.js";
import type { PostgresPool } from "../../stores/postgres.js";
import type { Redis } from "../../stores/redis.js";
import { createOrder, processOrders } from "./commands.js";
import { toOrder } from "./order-record.js";
import { measureOrderCommand } from "./metrics.js";
import { getOrder } from "./queries.js";

export interface OrderRoutesDeps {
  pool: PostgresPool;
  redis: Redis;
  /** Called after a command committed events, so the relay publishes them at once. */
  eventsWritten: () => void;
}

export function orderRoutes({ pool, redis, eventsWritten }: OrderRoutesDeps): (router: ConnectRouter) => void {
  return (router) =>
    router.service(OrderService, {
      async createOrder(request) {
        const { order, created } = await measureOrderCommand(() => createOrder(pool, request));
        if (created) eventsWritten();
        return { order: toOrder(order), created };
      },
      async processOrders(request) {
        const processed = await measureOrderCommand(() => processOrders(pool, request.limit));
        if (processed) eventsWritten();
        return { processed };
      },
      async getOrder(request) {
        return { order: await getOrder(redis, pool, request.id) };
      },
    });
}
