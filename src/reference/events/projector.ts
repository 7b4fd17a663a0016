import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "pino";
import type { Redis } from "../stores/redis.js";
import { deadLetterCounter, deliveryCount, moveToDeadLetter, type StreamEntry } from "./dead-letter.js";
import { MalformedEventError } from "./malformed-event.js";
import type { OutboxEvent } from "./outbox.js";
import { removeIdleConsumers, trimConsumedEntries } from "./stream-trim.js";

/** How long one XREADGROUP waits for new entries, in ms (its connection's timeout allows for it). */
export const projectorBlockMs = 1000;

export interface ProjectorOptions {
  /** A connection of its own: XREADGROUP blocks it. */
  redis: Redis;
  stream: string;
  group: string;
  /** Unique per process (the instance id), so each pending entry has one owner. */
  consumer: string;
  log: Logger;
  /** Applies a batch of events to the read model. Must be idempotent: an event may come twice. */
  apply(events: OutboxEvent[]): Promise<void>;
  /** Entries left unacknowledged this long by a consumer that died are taken over. Default 30 s. */
  claimIdleMs?: number;
  /** How often to trim entries every group has consumed and drop idle consumers (stream-trim.ts), in ms; 0 never. Default 10 s. */
  trimIntervalMs?: number;
  /**
   * Deliveries after which an entry that still fails to apply is moved to the dead-letter stream
   * `<stream>:dead` (dead-letter.ts). A malformed entry (MalformedEventError) goes at once.
   * Default 5: with the default claimIdleMs that is about two minutes of a failing entry.
   */
  maxDeliveries?: number;
  /**
   * Entries asked for per XREADGROUP and per XAUTOCLAIM page. Default 50. An entry may carry a
   * whole batch (a sync's or a snapshot's 500 users, ~150 KB), so this bounds the reply one
   * command brings in: 500 such entries were 75 MB, more than a command's timeout allows.
   */
  readCount?: number;
  /**
   * The most entry bytes (field names and values) handed to `apply` at once. Default 1 MiB. A
   * round's entries are applied in slices of this size, each awaited before the next, so that
   * parsing and projecting never hold the event loop for long: one batch of 250,000 users did for
   * seconds, and the instance answered no call meanwhile (test/integration/projection-backlog.test.ts).
   * An entry larger than this is applied alone.
   */
  applyBytes?: number;
}

export interface Projector {
  stop(): Promise<void>;
}

/**
 * startProjector consumes a Redis stream through a consumer group and acknowledges each batch
 * only after `apply` succeeded, so a crash between the two replays the batch instead of losing
 * it. Entries of consumers that died are claimed (XAUTOCLAIM) after `claimIdleMs`. The group is
 * (re)created when missing, as after Redis restarted empty. Every `trimIntervalMs` it removes the
 * entries every group has acknowledged, so the stream holds what is in flight, not all history,
 * and the consumers (earlier processes) idle ten times `claimIdleMs` that hold nothing pending.
 *
 * A batch that fails is applied again entry by entry, so one bad entry never holds back the good
 * ones beside it. An entry that fails alone stays pending, is claimed again after `claimIdleMs`,
 * and after `maxDeliveries` deliveries (at once when it is malformed) is moved to `<stream>:dead`
 * with the reason and acknowledged: redelivered forever, it would also pin the trim bound and let
 * the stream grow without end.
 *
 * Every step is bounded (`readCount` entries per command, `applyBytes` per apply), so a backlog of
 * any size is worked through in short steps between which the process serves its calls.
 */
export function startProjector(options: ProjectorOptions): Projector {
  const { redis, stream, group, consumer, log, claimIdleMs = 30_000, trimIntervalMs = 10_000, maxDeliveries = 5, readCount = 50, applyBytes = 1024 * 1024 } = options;
  const deadLetters = deadLetterCounter();
  // Series from the start, so that the alert expression has data before the first dead letter.
  for (const kind of ["malformed", "failed"]) deadLetters.inc({ stream, group, kind }, 0);
  const stopping = new AbortController();
  let failures = 0;
  let lastClaim = 0;
  // Where the next XAUTOCLAIM page starts; "0-0" once a sweep of the pending list is complete.
  let claimCursor = "0-0";
  let lastTrim = performance.now();
  let rereadOwnPending = false;

  const ensureGroup = async () => {
    try {
      await redis.xgroup("CREATE", stream, group, "0", "MKSTREAM");
    } catch (error) {
      if (!String(error).includes("BUSYGROUP")) throw error;
    }
  };

  /** Applies `entries` in slices of at most `applyBytes` (see ProjectorOptions.applyBytes). */
  const applyEntries = async (entries: StreamEntry[]) => {
    for (const slice of slicesByBytes(entries, applyBytes)) await applySlice(slice);
  };

  const applySlice = async (entries: StreamEntry[]) => {
    if (entries.length === 0) return;
    try {
      await options.apply(entries.map(([, fields]) => toEvent(fields)));
      await redis.xack(stream, group, ...entries.map(([id]) => id));
      return;
    } catch (error) {
      // One entry alone: it is the one that failed. Several: find which, apply the others.
      if (entries.length === 1) return settleFailure(entries[0]!, error);
    }
    const applied: string[] = [];
    for (const entry of entries) {
      try {
        await options.apply([toEvent(entry[1])]);
        applied.push(entry[0]);
      } catch (error) {
        await settleFailure(entry, error);
      }
    }
    if (applied.length > 0) await redis.xack(stream, group, ...applied);
  };

  /**
   * An entry that failed alone: dead-lettered when malformed or out of deliveries, else left
   * pending for XAUTOCLAIM to deliver again. Throws (failing the round) only when Redis itself
   * failed, in which case nothing was decided.
   */
  const settleFailure = async (entry: StreamEntry, error: unknown) => {
    const deliveries = await deliveryCount(redis, stream, group, entry[0]);
    const malformed = error instanceof MalformedEventError;
    if (!malformed && deliveries < maxDeliveries) {
      log.warn({ err: error, stream, entry: entry[0], deliveries, maxDeliveries }, "event failed to apply; it will be delivered again");
      return;
    }
    const reason = `${malformed ? "malformed" : `failed ${deliveries} deliveries`}: ${error instanceof Error ? error.message : String(error)}`;
    await moveToDeadLetter(redis, stream, group, entry, { reason, deliveries });
    deadLetters.inc({ stream, group, kind: malformed ? "malformed" : "failed" });
    log.error({ stream, entry: entry[0], deadLetterStream: `${stream}:dead`, reason }, "event moved to the dead-letter stream");
  };

  const loop = (async () => {
    let groupReady = false;
    while (!stopping.signal.aborted) {
      try {
        if (!groupReady) {
          await ensureGroup();
          groupReady = true;
        }
        // A sweep of the pending list, one page of `readCount` per round, every claimIdleMs / 2;
        // a sweep that has more pages goes on at the next round, between reads of new entries.
        if (claimCursor !== "0-0" || performance.now() - lastClaim > claimIdleMs / 2) {
          if (claimCursor === "0-0") lastClaim = performance.now();
          const [next, claimed] = (await redis.xautoclaim(stream, group, consumer, claimIdleMs, claimCursor, "COUNT", readCount)) as [string, (StreamEntry | null)[]];
          claimCursor = next;
          await applyEntries(claimed.filter((entry) => entry !== null));
        }
        if (trimIntervalMs > 0 && performance.now() - lastTrim > trimIntervalMs) {
          lastTrim = performance.now();
          // A failed trim is retried next interval; it must not hold the projection back.
          await trimConsumedEntries(redis, stream)
            .then(() => removeIdleConsumers(redis, stream, group, claimIdleMs * 10))
            .catch((error: unknown) => log.warn({ err: error, stream }, "stream maintenance failed"));
        }
        if (rereadOwnPending) {
          // After a failed round, first this consumer's own pending entries (ID 0 reads them
          // again): a read that timed out here while Redis hung may still have been served when
          // it came back, and its entries were then delivered to no one waiting. Without this
          // they would wait for XAUTOCLAIM, claimIdleMs later.
          const mine = (await redis.xreadgroup("GROUP", group, consumer, "COUNT", readCount, "STREAMS", stream, "0")) as [string, StreamEntry[]][] | null;
          await applyEntries(mine?.[0]?.[1] ?? []);
          rereadOwnPending = false;
        }
        const answer = (await redis.xreadgroup("GROUP", group, consumer, "COUNT", readCount, "BLOCK", projectorBlockMs, "STREAMS", stream, ">")) as [string, StreamEntry[]][] | null;
        await applyEntries(answer?.[0]?.[1] ?? []);
        if (failures > 0) log.info({ stream, after: failures }, "projection recovered");
        failures = 0;
      } catch (error) {
        if (stopping.signal.aborted) break;
        failures++;
        rereadOwnPending = true;
        if (String(error).includes("NOGROUP")) groupReady = false;
        if (failures === 1 || failures % 50 === 0) log.warn({ err: error, stream, failures }, "projection round failed; retrying");
        await sleep(Math.min(2000, 100 * 2 ** Math.min(failures, 5)), undefined, { signal: stopping.signal }).catch(() => undefined);
      }
    }
  })();

  return {
    async stop() {
      stopping.abort();
      redis.disconnect(); // ends a blocking XREADGROUP at once
      await loop;
    },
  };
}

/**
 * slicesByBytes cuts `entries` into consecutive slices of at most `maxBytes` of field text each
 * (string length, close enough to bytes for a bound); an entry larger than that is a slice alone.
 */
export function slicesByBytes(entries: readonly StreamEntry[], maxBytes: number): StreamEntry[][] {
  const slices: StreamEntry[][] = [];
  let slice: StreamEntry[] = [];
  let bytes = 0;
  for (const entry of entries) {
    const size = entry[1].reduce((sum, field) => sum + field.length, 0);
    if (slice.length > 0 && bytes + size > maxBytes) {
      slices.push(slice);
      slice = [];
      bytes = 0;
    }
    slice.push(entry);
    bytes += size;
  }
  if (slice.length > 0) slices.push(slice);
  return slices;
}

/** An entry's fields as an event; MalformedEventError when they are not one (no id, no type, payload not a JSON object). */
function toEvent(fields: string[]): OutboxEvent {
  const record: Record<string, string> = {};
  for (let i = 0; i + 1 < fields.length; i += 2) record[fields[i]!] = fields[i + 1]!;
  if (!record.id || !record.type) throw new MalformedEventError("the entry has no id or no type field");
  let payload: unknown;
  try {
    payload = JSON.parse(record.payload ?? "{}");
  } catch (error) {
    throw new MalformedEventError(`the payload is not JSON: ${(error as Error).message}`, { cause: error });
  }
  if (typeof payload !== "object" || payload === null || Array.isArray(payload)) throw new MalformedEventError("the payload is not a JSON object");
  return { id: record.id, type: record.type, payload: payload as Record<string, unknown> };
}
