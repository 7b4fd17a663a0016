import { Code, ConnectError } from "@connectrpc/connect";
import type { User } from "../../../gen/meshkit/users/v1/users_pb.js";
import { readEntity } from "../../events/read-model.js";
import type { PostgresPool } from "../../platform/postgres.js";
import type { Redis } from "../../platform/redis.js";
import { toUser, userColumns, userIndexKey, userKey, type UserRecord } from "./user-record.js";

export async function getUser(redis: Redis, pool: PostgresPool, thirdPartyId: string): Promise<User> {
  const cached = (await readEntity(redis, userKey(thirdPartyId))) as UserRecord | undefined;
  if (cached) return toUser(cached);
  const { rows } = await pool.query<UserRecord>(`SELECT ${userColumns} FROM users WHERE third_party_id = $1`, [thirdPartyId]);
  if (!rows[0]) throw new ConnectError(`user ${thirdPartyId} not found`, Code.NotFound);
  return toUser(rows[0]);
}

/**
 * listUsers pages by third-party id: from the read model's id index when Redis answers, else
 * from PostgreSQL. The page token is the last id of the previous page.
 */
export async function listUsers(redis: Redis, pool: PostgresPool, pageSize: number, after: string): Promise<{ users: User[]; nextPageToken: string }> {
  const size = pageSize === 0 ? 100 : pageSize;
  let records: UserRecord[] | undefined;
  try {
    const ids = await redis.zrangebylex(userIndexKey, after ? `(${after}` : "-", "+", "LIMIT", 0, size);
    if (ids.length > 0) {
      const pipeline = redis.pipeline();
      for (const id of ids) pipeline.hget(userKey(id), "json");
      const jsons = ((await pipeline.exec()) ?? []).map(([, value]) => value as string | null);
      if (jsons.every((json) => json !== null)) records = jsons.map((json) => JSON.parse(json!) as UserRecord);
    }
  } catch {
    records = undefined; // Redis away: PostgreSQL answers
  }
  if (!records) {
    const { rows } = await pool.query<UserRecord>(`SELECT ${userColumns} FROM users WHERE third_party_id > $1 ORDER BY third_party_id LIMIT $2`, [after, size]);
    records = rows;
  }
  const users = records.map(toUser);
  return { users, nextPageToken: users.length === size ? users[users.length - 1]!.thirdPartyId : "" };
}
