import type { OutboxEvent } from "../../events/outbox.js";
import { readModelWriter, statsKeys } from "../../events/read-model.js";
import type { Redis } from "../../stores/redis.js";
import { orderKey, type OrderRecord } from "./order-record.js";

/**
 * projectOrders applies order events to the read model: `order:{id}` holds the newest version
 * of each order, and `stats:total_orders` counts each order once. `orders.snapshot` (a rebuild,
 * see snapshot.ts) carries many orders.
 */
export async function projectOrders(redis: Redis, events: OutboxEvent[]): Promise<void> {
  const writer = readModelWriter(redis);
  const put = (order: OrderRecord) => writer.putVersioned(orderKey(order.id), statsKeys.orders, Number(order.version), JSON.stringify(order));
  for (const event of events) {
    if (event.type === "order.created" || event.type === "order.processed") put(event.payload as unknown as OrderRecord);
    else if (event.type === "orders.snapshot") for (const order of (event.payload.orders ?? []) as OrderRecord[]) put(order);
  }
  await writer.flush();
}
