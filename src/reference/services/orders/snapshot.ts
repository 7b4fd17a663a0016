import type pg from "pg";
import { appendSnapshot } from "../../events/snapshot.js";
import { ordersStream } from "./commands.js";
import { orderColumns } from "./order-record.js";

/**
 * snapshotOrders appends to the outbox, on `client` inside a transaction, every order as
 * `orders.snapshot` events of 500, for rebuilding a read model Redis lost; versions make it safe
 * however it interleaves with events written meanwhile.
 */
export async function snapshotOrders(client: pg.PoolClient): Promise<void> {
  await appendSnapshot(client, { stream: ordersStream, eventType: "orders.snapshot", field: "orders", select: `SELECT ${orderColumns} FROM orders`, orderBy: "created_at, id" });
}
