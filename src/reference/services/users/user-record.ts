import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { UserSchema, type User } from "../../../../gen/meshkit/users/v1/users_pb.js";

/** A user as PostgreSQL returns it and as the read model stores it (JSON). */
export interface UserRecord {
  third_party_id: string;
  name: string;
  email: string;
  phone: string;
  status: string;
  created_at: string | Date;
  updated_at: string | Date;
  last_synced_at: string | Date | null;
  version: string | number;
}

/** One user to write, from a source or a client. */
export interface UserInput {
  thirdPartyId: string;
  name: string;
  email: string;
  phone: string;
  status: string;
}

export const userColumns = "third_party_id, name, email, phone, status, created_at, updated_at, last_synced_at, version";

export const userKey = (thirdPartyId: string) => `user:${thirdPartyId}`;

/**
 * The field of `user:{id}` beside its JSON that holds when a sync last saw the user unchanged
 * (ISO time): such a sync sends only the id, not a new version of the JSON.
 */
export const syncedAtField = "synced_at";

/** A user from the read model's two fields: its JSON, and the later of the two sync times. */
export function userFromReadModel(json: string, syncedAt: string | null): UserRecord {
  const record = JSON.parse(json) as UserRecord;
  const inJson = record.last_synced_at ? new Date(record.last_synced_at).toISOString() : undefined;
  if (syncedAt && (!inJson || syncedAt > inJson)) record.last_synced_at = syncedAt;
  return record;
}

/** A sorted set of every user id (all scores 0), for ListUsers paging by id from Redis. */
export const userIndexKey = "users:index";

export function toUser(record: UserRecord): User {
  return create(UserSchema, {
    thirdPartyId: record.third_party_id,
    name: record.name,
    email: record.email,
    phone: record.phone,
    status: record.status,
    createdAt: timestampFromDate(new Date(record.created_at)),
    updatedAt: timestampFromDate(new Date(record.updated_at)),
    ...(record.last_synced_at ? { lastSyncedAt: timestampFromDate(new Date(record.last_synced_at)) } : {}),
  });
}
