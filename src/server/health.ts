import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import {
  Health,
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus as ServingStatus,
  type HealthCheckResponse,
} from "../../gen/health/v1/health_pb.js";

export { ServingStatus };

/**
 * HealthStatus holds the serving status of each service of one server, and of the server as a
 * whole under the empty name "", as `grpc.health.v1` defines it. Consul's gRPC check, grpcurl
 * and load balancers read it through the Health service that `healthRoutes` mounts.
 *
 * ```ts
 * const health = createHealthStatus(["meshkit.echo.v1.EchoService"]);
 * health.setAll(ServingStatus.NOT_SERVING); // when draining
 * ```
 */
export interface HealthStatus {
  /** The status of `service`, or undefined when the server does not know it. */
  get(service: string): ServingStatus | undefined;
  /** Sets the status of one service ("" is the whole server). */
  set(service: string, status: ServingStatus): void;
  /** Sets the status of every known service and of the whole server. */
  setAll(status: ServingStatus): void;
  /** Calls `listener` on every change until the returned function is called. */
  subscribe(listener: (service: string, status: ServingStatus) => void): () => void;
  /** All known services and their status. */
  entries(): IterableIterator<[string, ServingStatus]>;
}

/**
 * createHealthStatus starts every named service, and the server itself (""), as SERVING.
 * Callers flip statuses as their dependencies come and go.
 */
export function createHealthStatus(services: Iterable<string>): HealthStatus {
  const statuses = new Map<string, ServingStatus>([["", ServingStatus.SERVING]]);
  for (const name of services) statuses.set(name, ServingStatus.SERVING);
  const listeners = new Set<(service: string, status: ServingStatus) => void>();

  const set = (service: string, status: ServingStatus) => {
    if (statuses.get(service) === status) return;
    statuses.set(service, status);
    for (const listener of listeners) listener(service, status);
  };
  return {
    get: (service) => statuses.get(service),
    set,
    setAll(status) {
      for (const name of [...statuses.keys()]) set(name, status);
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    entries: () => statuses.entries(),
  };
}

function response(status: ServingStatus): HealthCheckResponse {
  return create(HealthCheckResponseSchema, { status });
}

/**
 * healthRoutes mounts `grpc.health.v1.Health` (Check, Watch and List) over `status`.
 * connect-node has no health service of its own (connect-es #507), and the grpc-health-check
 * package only plugs into grpc-js servers, hence this small one.
 */
export function healthRoutes(
  status: HealthStatus,
  /** When aborted (the server is draining), Watch streams end cleanly instead of hanging. */
  closing?: AbortSignal,
): (router: ConnectRouter) => void {
  return (router) =>
    router.service(Health, {
      check(request) {
        const current = status.get(request.service);
        if (current === undefined) {
          throw new ConnectError(`unknown service "${request.service}"`, Code.NotFound);
        }
        return response(current);
      },

      async *watch(request, context) {
        // The spec: send the current status at once, then each change; an unknown service is
        // reported as SERVICE_UNKNOWN rather than failing, since it may be registered later.
        const pending: ServingStatus[] = [status.get(request.service) ?? ServingStatus.SERVICE_UNKNOWN];
        let wake: (() => void) | undefined;
        const unsubscribe = status.subscribe((service, next) => {
          if (service !== request.service) return;
          pending.push(next);
          wake?.();
        });
        const onAbort = () => wake?.();
        context.signal.addEventListener("abort", onAbort);
        closing?.addEventListener("abort", onAbort);
        try {
          let last: ServingStatus | undefined;
          while (!context.signal.aborted) {
            const next = pending.shift();
            if (next === undefined) {
              if (closing?.aborted) return;
              await new Promise<void>((resolve) => (wake = resolve));
              wake = undefined;
              continue;
            }
            if (next === last) continue;
            last = next;
            yield response(next);
          }
        } finally {
          unsubscribe();
          context.signal.removeEventListener("abort", onAbort);
          closing?.removeEventListener("abort", onAbort);
        }
      },

      list() {
        const statuses: Record<string, HealthCheckResponse> = {};
        for (const [name, current] of status.entries()) statuses[name] = response(current);
        return { statuses };
      },
    });
}
