import { Code, ConnectError } from "@connectrpc/connect";
import type { Order } from "../../../../gen/meshkit/orders/v1/orders_pb.js";
import { readEntity } from "../../events/read-model.js";
import type { PostgresPool } from "../../stores/postgres.js";
import type { Redis } from "../../stores/redis.js";
import { orderColumns, orderKey, toOrder, type OrderRecord } from "./order-record.js";

/** getOrder answers from the Redis read model, and from PostgreSQL when Redis misses or is down. */
export async function getOrder(redis: Redis, pool: PostgresPool, id: string): Promise<Order> {
  const cached = (await readEntity(redis, orderKey(id))) as OrderRecord | undefined;
  if (cached) return toOrder(cached);
  const { rows } = await pool.query<OrderRecord>(`SELECT ${orderColumns} FROM orders WHERE id = $1`, [id]);
  if (!rows[0]) throw new ConnectError(`order ${id} not found`, Code.NotFound);
  return toOrder(rows[0]);
}
