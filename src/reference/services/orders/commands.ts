import { Code, ConnectError } from "@connectrpc/connect";
import type { CreateOrderRequest } from "../../../../gen/meshkit/orders/v1/orders_pb.js";
import { appendEvents } from "../../events/outbox.js";
import { inTransaction, type PostgresPool } from "../../stores/postgres.js";
import { orderColumns, type OrderRecord } from "./order-record.js";

export const ordersStream = "events:orders";

/**
 * createOrder inserts the order and its `order.created` event in one transaction. The
 * idempotency key is UNIQUE: a repeat with the same key and the same content returns the first
 * order (created = false); the same key with different content is refused, since silently
 * answering with another order would hide a client bug.
 */
export async function createOrder(pool: PostgresPool, request: CreateOrderRequest): Promise<{ order: OrderRecord; created: boolean }> {
  return inTransaction(pool, async (client) => {
    const inserted = await client.query<OrderRecord>(
      `INSERT INTO orders (idempotency_key, user_id, product, quantity, amount_cents)
       VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (idempotency_key) DO NOTHING
       RETURNING ${orderColumns}`,
      [request.idempotencyKey, request.userId, request.product, request.quantity, request.amountCents.toString()],
    );
    const order = inserted.rows[0];
    if (order) {
      await appendEvents(client, ordersStream, [{ type: "order.created", payload: order }]);
      return { order, created: true };
    }
    const existing = await client.query<OrderRecord>(`SELECT ${orderColumns} FROM orders WHERE idempotency_key = $1`, [request.idempotencyKey]);
    const previous = existing.rows[0]!;
    const same =
      previous.user_id === request.userId &&
      previous.product === request.product &&
      previous.quantity === request.quantity &&
      previous.amount_cents === request.amountCents.toString();
    if (!same) {
      throw new ConnectError(`idempotency key "${request.idempotencyKey}" was already used for a different order (${previous.id})`, Code.AlreadyExists);
    }
    return { order: previous, created: false };
  });
}

/**
 * processOrders marks up to `limit` pending orders processed, oldest first, with their events.
 * SKIP LOCKED lets several instances process at once without taking the same order twice.
 */
export async function processOrders(pool: PostgresPool, limit: number): Promise<number> {
  return inTransaction(pool, async (client) => {
    const { rows } = await client.query<OrderRecord>(
      `UPDATE orders SET status = 'PROCESSED', version = version + 1, updated_at = now()
       WHERE id IN (SELECT id FROM orders WHERE status = 'PENDING' ORDER BY created_at LIMIT $1 FOR UPDATE SKIP LOCKED)
       RETURNING ${orderColumns}`,
      [limit],
    );
    await appendEvents(client, ordersStream, rows.map((order) => ({ type: "order.processed", payload: order })));
    return rows.length;
  });
}
