import { Code, ConnectError } from "@connectrpc/connect";
import type { User } from "../../../../gen/meshkit/users/v1/users_pb.js";
import type { PostgresPool } from "../../stores/postgres.js";
import type { Redis } from "../../stores/redis.js";
import { syncedAtField, toUser, userColumns, userFromReadModel, userIndexKey, userKey, type UserRecord } from "./user-record.js";

/** The read model's users, in order; undefined for any Redis does not hold (or when it is away). */
async function cachedUsers(redis: Redis, ids: readonly string[]): Promise<(UserRecord | undefined)[]> {
  try {
    const pipeline = redis.pipeline();
    for (const id of ids) pipeline.hmget(userKey(id), "json", syncedAtField);
    const answers = (await pipeline.exec()) ?? [];
    return answers.map(([error, value]) => {
      const [json, syncedAt] = (value ?? []) as (string | null)[];
      return !error && json ? userFromReadModel(json, syncedAt ?? null) : undefined;
    });
  } catch {
    return ids.map(() => undefined); // Redis away: PostgreSQL answers
  }
}

export async function getUser(redis: Redis, pool: PostgresPool, thirdPartyId: string): Promise<User> {
  const [cached] = await cachedUsers(redis, [thirdPartyId]);
  if (cached) return toUser(cached);
  const { rows } = await pool.query<UserRecord>(`SELECT ${userColumns} FROM users WHERE third_party_id = $1`, [thirdPartyId]);
  if (!rows[0]) throw new ConnectError(`user ${thirdPartyId} not found`, Code.NotFound);
  return toUser(rows[0]);
}

/**
 * listUsers pages by third-party id: from the read model's id index when Redis answers, else
 * from PostgreSQL. The page token is the last id of the previous page.
 *
 * Both paths page in byte order: Redis compares the index's members byte by byte (ZRANGEBYLEX),
 * so PostgreSQL compares and sorts with COLLATE "C" (byte order, served by the index of
 * migration 5), whatever collation the database has. In a collation order (en-US puts "a_c"
 * before "A1" before "ab") a query that switched path between two pages skipped or repeated users.
 */
export async function listUsers(redis: Redis, pool: PostgresPool, pageSize: number, after: string): Promise<{ users: User[]; nextPageToken: string }> {
  const size = pageSize === 0 ? 100 : pageSize;
  let records: UserRecord[] | undefined;
  try {
    const ids = await redis.zrangebylex(userIndexKey, after ? `(${after}` : "-", "+", "LIMIT", 0, size);
    if (ids.length > 0) {
      const cached = await cachedUsers(redis, ids);
      if (cached.every((record) => record !== undefined)) records = cached as UserRecord[];
    }
  } catch {
    records = undefined; // Redis away: PostgreSQL answers
  }
  if (!records) {
    const { rows } = await pool.query<UserRecord>(`SELECT ${userColumns} FROM users WHERE third_party_id COLLATE "C" > $1 ORDER BY third_party_id COLLATE "C" LIMIT $2`, [after, size]);
    records = rows;
  }
  const users = records.map(toUser);
  return { users, nextPageToken: users.length === size ? users[users.length - 1]!.thirdPartyId : "" };
}
