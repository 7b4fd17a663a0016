import { setTimeout as sleep } from "node:timers/promises";
import type { ConnectRouter } from "@connectrpc/connect";
import { StatusService, type SystemStatus } from "../../../../gen/meshkit/status/v1/status_pb.js";
import { sameStatus } from "./collect.js";

export interface StatusRoutesDeps {
  collect: () => Promise<SystemStatus>;
  /** How often a watch looks for changes, ms. */
  watchIntervalMs: number;
}

export function statusRoutes({ collect, watchIntervalMs }: StatusRoutesDeps): (router: ConnectRouter) => void {
  return (router) =>
    router.service(StatusService, {
      async getSystemStatus() {
        return { status: await collect() };
      },
      async *watchSystemStatus(_request, context) {
        let last: SystemStatus | undefined;
        while (!context.signal.aborted) {
          const status = await collect();
          if (!last || !sameStatus(last, status)) {
            last = status;
            yield { status };
          }
          await sleep(watchIntervalMs, undefined, { signal: context.signal }).catch(() => undefined);
        }
      },
    });
}
