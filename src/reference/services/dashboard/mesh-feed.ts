import { AsyncLocalStorage } from "node:async_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { context, isSpanContextValid, trace, type Link, type Tracer } from "@opentelemetry/api";
import { tracedTick } from "../traced-tick.js";

/** MeshFeed is one collector shared by every subscriber, whatever they watch. */
export interface MeshFeed<T> {
  /**
   * The snapshot for `key` (the last one collected, at once, when there is one), then each new
   * one, until `signal` aborts. A slow subscriber skips to the newest; it never queues old ones.
   */
  watch(key: string, signal: AbortSignal): AsyncGenerator<T>;
  /** Subscribers watching now, all keys together. */
  readonly subscribers: number;
}

/** MeshFeedOptions configure `createMeshFeed`. */
export interface MeshFeedOptions {
  /** The tracer of the ticks' spans. Default: the global tracer provider's `meshkit-dashboard`. */
  tracer?: Tracer;
}

/**
 * createMeshFeed runs `collect` every `intervalMs` while at least one subscriber watches, with
 * the set of keys watched at that moment (a dashboard's key is the service it details, "" for
 * none), and hands each subscriber its key's snapshot: a hundred pages watching one service cost
 * one collection, and the pages on other services one more detail each, not one more overview.
 * With no subscriber it collects nothing. A collect that throws is skipped; the next tick tries
 * again. Each tick is a root span `dashboard.collect`, linked to the watch whose arrival started
 * the collector and run outside that watch's context, as the status service's feed does
 * (status/status-feed.ts).
 */
export function createMeshFeed<T>(collect: (keys: ReadonlySet<string>) => Promise<ReadonlyMap<string, T>>, intervalMs: number, options: MeshFeedOptions = {}): MeshFeed<T> {
  const tracer = options.tracer ?? trace.getTracer("meshkit-dashboard");
  const detached = AsyncLocalStorage.snapshot();
  const watching = new Map<string, number>();
  let subscribers = 0;
  let latest = new Map<string, T>();
  let changed = Promise.withResolvers<void>();
  let running: Promise<void> | undefined;

  const tick = (links: Link[], keys: ReadonlySet<string>) => tracedTick(tracer, "dashboard.collect", links, { "meshkit.dashboard.subscribers": subscribers, "meshkit.dashboard.keys": keys.size }, () => collect(keys));

  const loop = async (links: Link[]) => {
    for (;;) {
      // Checked and given up in one synchronous step: a subscriber arriving later starts a new loop.
      if (subscribers === 0) {
        latest = new Map(); // the next subscriber starts from a fresh snapshot, not an old one
        running = undefined;
        return;
      }
      const snapshots = await tick(links, new Set(watching.keys()));
      if (snapshots) {
        latest = new Map(snapshots);
        changed.resolve();
        changed = Promise.withResolvers<void>();
      }
      await sleep(intervalMs);
    }
  };

  return {
    get subscribers() {
      return subscribers;
    },
    async *watch(key, signal) {
      subscribers++;
      watching.set(key, (watching.get(key) ?? 0) + 1);
      if (!running) {
        const startedBy = trace.getSpanContext(context.active());
        const links = startedBy && isSpanContextValid(startedBy) ? [{ context: startedBy }] : [];
        running = detached(() => loop(links));
      }
      const aborted = new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
      try {
        let sent: T | undefined;
        while (!signal.aborted) {
          const snapshot = latest.get(key);
          if (snapshot !== undefined && snapshot !== sent) {
            sent = snapshot;
            yield snapshot;
            continue;
          }
          await Promise.race([changed.promise, aborted]);
        }
      } finally {
        subscribers--;
        const left = (watching.get(key) ?? 1) - 1;
        if (left > 0) watching.set(key, left);
        else watching.delete(key);
      }
    },
  };
}
