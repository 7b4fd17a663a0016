import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { compareIds, removeIdleConsumers, trimConsumedEntries } from "../../src/reference/events/stream-trim.js";

describe("trimming consumed stream entries (real Redis)", () => {
  const redis = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379");
  const streams: string[] = [];
  const newStream = async (entries: number) => {
    const stream = `test:trim:${randomUUID()}`;
    streams.push(stream);
    const ids: string[] = [];
    for (let n = 0; n < entries; n++) ids.push((await redis.xadd(stream, "*", "n", String(n)))!);
    return { stream, ids };
  };
  const read = async (stream: string, group: string, count: number, consumer = "consumer-1") => {
    const answer = (await redis.xreadgroup("GROUP", group, consumer, "COUNT", count, "STREAMS", stream, ">")) as [string, [string, string[]][]][];
    return answer[0]![1].map(([id]) => id);
  };
  after(async () => {
    if (streams.length) await redis.del(...streams);
    redis.disconnect();
  });

  it("removes only what every group has acknowledged, up to the slowest group's oldest pending entry", async () => {
    const { stream, ids } = await newStream(10);
    await redis.xgroup("CREATE", stream, "fast", "0");
    await redis.xgroup("CREATE", stream, "slow", "0");
    await redis.xack(stream, "fast", ...(await read(stream, "fast", 10)));
    const slowRead = await read(stream, "slow", 6);
    await redis.xack(stream, "slow", ...slowRead.slice(0, 3)); // entries 3, 4 and 5 stay pending

    assert.equal(await trimConsumedEntries(redis, stream), 3);
    const left = (await redis.xrange(stream, "-", "+")).map(([id]) => id);
    assert.deepEqual(left, ids.slice(3), "an entry still pending or unread by the slow group was removed");

    // Once the slow group has acknowledged everything, all but the last delivered entry go.
    await redis.xack(stream, "slow", ...slowRead.slice(3));
    await redis.xack(stream, "slow", ...(await read(stream, "slow", 10)));
    assert.equal(await trimConsumedEntries(redis, stream), 6);
    assert.deepEqual((await redis.xrange(stream, "-", "+")).map(([id]) => id), [ids[9]]);
  });

  it("leaves a stream without groups, and a missing stream, alone", async () => {
    const { stream } = await newStream(5);
    assert.equal(await trimConsumedEntries(redis, stream), 0);
    assert.equal(await redis.xlen(stream), 5);
    assert.equal(await trimConsumedEntries(redis, `test:trim:missing:${randomUUID()}`), 0);
  });

  it("removes consumers idle past the limit that hold nothing pending, and keeps one holding entries", async () => {
    const { stream } = await newStream(4);
    await redis.xgroup("CREATE", stream, "g", "0");
    await redis.xack(stream, "g", ...(await read(stream, "g", 2, "finished")));
    await read(stream, "g", 2, "holding"); // read, never acknowledged: its process died
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(await removeIdleConsumers(redis, stream, "g", 60_000), 0, "a consumer idle for less than the limit was removed");
    assert.equal(await removeIdleConsumers(redis, stream, "g", 20), 1);
    const left = ((await redis.xinfo("CONSUMERS", stream, "g")) as unknown[][]).map((fields) => fields[1]);
    assert.deepEqual(left, ["holding"]);
    assert.equal(((await redis.xpending(stream, "g")) as [number])[0], 2, "the pending entries of the kept consumer are gone");
  });

  it("orders stream ids by time, then sequence", () => {
    assert.ok(compareIds("10-0", "9-5") > 0);
    assert.ok(compareIds("5-10", "5-9") > 0);
    assert.equal(compareIds("7-1", "7-1"), 0);
    assert.ok(compareIds("1700000000000-0", "1700000000001-0") < 0);
  });
});
