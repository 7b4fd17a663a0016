import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { OrderSchema, OrderStatus, type Order } from "../../../../gen/meshkit/orders/v1/orders_pb.js";

/** An order as PostgreSQL returns it and as the read model stores it (JSON). */
export interface OrderRecord {
  id: string;
  user_id: string;
  product: string;
  quantity: number;
  amount_cents: string;
  status: "PENDING" | "PROCESSED";
  created_at: string | Date;
  updated_at: string | Date;
  version: string | number;
}

export const orderColumns = "id, user_id, product, quantity, amount_cents::text, status, created_at, updated_at, version";

export function orderKey(id: string): string {
  return `order:${id}`;
}

export function toOrder(record: OrderRecord): Order {
  return create(OrderSchema, {
    id: record.id,
    userId: record.user_id,
    product: record.product,
    quantity: record.quantity,
    amountCents: BigInt(record.amount_cents),
    status: record.status === "PROCESSED" ? OrderStatus.PROCESSED : OrderStatus.PENDING,
    createdAt: timestampFromDate(new Date(record.created_at)),
    updatedAt: timestampFromDate(new Date(record.updated_at)),
  });
}
