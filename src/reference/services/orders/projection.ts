import type { OutboxEvent } from "../../events/outbox.js";
import { MalformedEventError } from "../../events/malformed-event.js";
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
    if (event.type === "order.created" || event.type === "order.processed") put(checkedOrder(event.payload));
    else if (event.type === "orders.snapshot") {
      if (!Array.isArray(event.payload.orders)) throw new MalformedEventError(`${event.type} ${event.id} has no orders array`);
      for (const order of event.payload.orders as unknown[]) put(checkedOrder(order));
    }
  }
  await writer.flush();
}

/** The order an event carries, if it has what the read model keys and versions it by. */
function checkedOrder(value: unknown): OrderRecord {
  const order = value as Partial<OrderRecord> | null;
  if (typeof order?.id !== "string" || order.id === "" || !Number.isSafeInteger(Number(order.version))) {
    throw new MalformedEventError("an order event without an id or an integer version");
  }
  return order as OrderRecord;
}
