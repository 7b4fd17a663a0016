import type { OutboxEvent } from "../../events/outbox.js";
import { readModelWriter, statsKeys } from "../../events/read-model.js";
import type { Redis } from "../../platform/redis.js";
import { orderKey, type OrderRecord } from "./order-record.js";

/**
 * projectOrders applies order events to the read model: `order:{id}` holds the newest version
 * of each order, and `stats:total_orders` counts each order once.
 */
export async function projectOrders(redis: Redis, events: OutboxEvent[]): Promise<void> {
  const writer = readModelWriter(redis);
  for (const event of events) {
    if (event.type !== "order.created" && event.type !== "order.processed") continue;
    const order = event.payload as unknown as OrderRecord;
    writer.putVersioned(orderKey(order.id), statsKeys.orders, Number(order.version), JSON.stringify(order));
  }
  await writer.flush();
}
