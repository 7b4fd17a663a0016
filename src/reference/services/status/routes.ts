import type { ConnectRouter } from "@connectrpc/connect";
import { StatusService, type SystemStatus } from "../../../../gen/meshkit/status/v1/status_pb.js";
import { createStatusFeed } from "./status-feed.js";

export interface StatusRoutesDeps {
  collect: () => Promise<SystemStatus>;
  /** How often the watch looks for changes, ms. */
  watchIntervalMs: number;
}

export function statusRoutes({ collect, watchIntervalMs }: StatusRoutesDeps): (router: ConnectRouter) => void {
  // One collector for all WatchSystemStatus streams of this instance (status-feed.ts).
  const feed = createStatusFeed(collect, watchIntervalMs);
  return (router) =>
    router.service(StatusService, {
      async getSystemStatus() {
        return { status: await collect() };
      },
      async *watchSystemStatus(_request, context) {
        for await (const status of feed.watch(context.signal)) yield { status };
      },
    });
}
