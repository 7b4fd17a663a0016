import { AsyncLocalStorage } from "node:async_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { context, isSpanContextValid, trace, type Link, type Tracer } from "@opentelemetry/api";
import { tracedTick } from "../traced-tick.js";
import type { SystemStatus } from "../../../../gen/meshkit/status/v1/status_pb.js";
import { sameStatus } from "./collect.js";

/** StatusFeed is one status collector shared by every WatchSystemStatus subscriber. */
export interface StatusFeed {
  /**
   * The status now (the last one collected, at once, when there is one), then each change, until
   * `signal` aborts. A slow subscriber skips to the newest status; it never queues old ones.
   */
  watch(signal: AbortSignal): AsyncGenerator<SystemStatus>;
  /** Subscribers watching now. */
  readonly subscribers: number;
}

/** StatusFeedOptions configure `createStatusFeed`. */
export interface StatusFeedOptions {
  /** The tracer of the ticks' spans. Default: the global tracer provider's `meshkit-status`. */
  tracer?: Tracer;
}

/**
 * createStatusFeed runs `collect` every `intervalMs` while at least one subscriber watches, and
 * hands every subscriber the same result: 1,000 watchers cost the Consul queries, mesh probes
 * and Redis reads of one (before, every stream polled all of them on its own, so the load on
 * Consul and Redis grew with the number of dashboards open). With no subscriber it collects
 * nothing. A collect that throws is skipped; the next tick tries again.
 *
 * Each tick is a trace of its own: a root span `status.collect`, under which the tick's Consul
 * queries, mesh probes and Redis reads are traced, with a span link to the span of the watch
 * whose arrival started the collector (when that watch was traced). The collector serves every
 * subscriber, so its ticks belong to none of their traces, and it runs outside the starting
 * watch's async context: that watch's deadline does not bound the ticks either.
 */
export function createStatusFeed(collect: () => Promise<SystemStatus>, intervalMs: number, options: StatusFeedOptions = {}): StatusFeed {
  const tracer = options.tracer ?? trace.getTracer("meshkit-status");
  // The async context the feed is made in (the service's start-up), where the collector runs.
  const detached = AsyncLocalStorage.snapshot();
  let subscribers = 0;
  let latest: SystemStatus | undefined;
  let changed = Promise.withResolvers<void>();
  let running: Promise<void> | undefined;

  const tick = (links: Link[]) => tracedTick(tracer, "status.collect", links, { "meshkit.status.subscribers": subscribers }, collect);

  const loop = async (links: Link[]) => {
    for (;;) {
      // Checked and given up in one synchronous step: a subscriber arriving later starts a new loop.
      if (subscribers === 0) {
        latest = undefined; // the next subscriber starts from a fresh status, not an old one
        running = undefined;
        return;
      }
      const status = await tick(links);
      if (status && (!latest || !sameStatus(latest, status))) {
        latest = status;
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
    async *watch(signal) {
      subscribers++;
      if (!running) {
        const startedBy = trace.getSpanContext(context.active());
        const links = startedBy && isSpanContextValid(startedBy) ? [{ context: startedBy }] : [];
        running = detached(() => loop(links));
      }
      const aborted = new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
      try {
        let sent: SystemStatus | undefined;
        while (!signal.aborted) {
          if (latest && latest !== sent) {
            sent = latest;
            yield latest;
            continue;
          }
          await Promise.race([changed.promise, aborted]);
        }
      } finally {
        subscribers--;
      }
    },
  };
}
