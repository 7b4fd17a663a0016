import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { UserSyncService } from "../../gen/meshkit/users/v1/users_pb.js";
import { eventually } from "../support/infra.js";
import { startPrivateStack, type PrivateStack } from "../support/private-stack.js";
import type { ServiceProcess } from "../support/service-process.js";

describe("ListUsers pages in one order from Redis and from PostgreSQL (issue 13, case 7)", function () {
  this.timeout(90_000);
  // Ids whose byte order and English collation order differ (case, punctuation, accents).
  const ids = ["A1", "Z", "a-b", "aB", "a_c", "ab", "b", "e", "f", "é"];
  const byteOrder = [...ids].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  let stack: PrivateStack;
  let users: ServiceProcess | undefined;

  before(async () => {
    // A database in an English collation, as many are: its default text order is not Redis's.
    stack = await startPrivateStack("list_order", { collation: "icu-en-US" });
    users = await stack.start("src/reference/services/users/main.ts", {
      SERVICE_NAME: `user-sync-order-${randomUUID().slice(0, 8)}`,
      SYNC_INTERVAL_MS: "0",
      REDIS_COMMAND_TIMEOUT_MS: "300",
    });
  });
  after(async () => {
    await stack?.close();
  });

  it("gives the same pages, without a skip or a repeat, when a listing switches from Redis to PostgreSQL midway", async () => {
    const client = createClient(UserSyncService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${users!.port}` }));
    await client.importUsers((async function* () {
      for (const id of ids) yield { user: { thirdPartyId: id, email: "someone@example.com" } };
    })());
    await eventually("every user in the Redis index", async () => ((await stack.redis.client.zcard("users:index")) === ids.length ? true : undefined));

    const page = async (token: string) => {
      const answer = await client.listUsers({ pageSize: 3, pageToken: token });
      return { ids: answer.users.map((user) => user.thirdPartyId), next: answer.nextPageToken };
    };
    const listAll = async (first?: { ids: string[]; next: string }) => {
      const seen: string[] = [...(first?.ids ?? [])];
      let token = first?.next ?? "";
      for (let pages = 0; pages < 10; pages++) {
        if (first && !token) break;
        const { ids: got, next } = await page(token);
        seen.push(...got);
        if (!next) break;
        token = next;
      }
      return seen;
    };

    // All from Redis.
    assert.deepEqual(await listAll(), byteOrder);
    // The first page from Redis, the rest from PostgreSQL (Redis gone mid-listing).
    const first = await page("");
    await stack.redis.stop();
    assert.deepEqual(await listAll(first), byteOrder);
    // All from PostgreSQL.
    assert.deepEqual(await listAll(), byteOrder);
  });
});
