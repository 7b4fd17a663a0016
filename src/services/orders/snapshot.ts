import type pg from "pg";
import { ordersStream } from "./commands.js";
import { orderColumns } from "./order-record.js";

/**
 * snapshotOrders appends to the outbox, on `client` inside a transaction, every order as
 * `orders.snapshot` events of 500, for rebuilding a read model Redis lost. Written in SQL so the
 * orders never pass through this process; versions make it safe however it interleaves with
 * events written meanwhile.
 */
export async function snapshotOrders(client: pg.PoolClient): Promise<void> {
  await client.query(
    `INSERT INTO outbox (stream, event_type, payload)
     SELECT $1, 'orders.snapshot', jsonb_build_object('orders', jsonb_agg(to_jsonb(o) - 'batch' ORDER BY o.created_at))
     FROM (SELECT ${orderColumns}, (row_number() OVER (ORDER BY created_at, id) - 1) / 500 AS batch FROM orders) o
     GROUP BY o.batch ORDER BY o.batch`,
    [ordersStream],
  );
}
