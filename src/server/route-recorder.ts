import type { DescMethod, DescService } from "@bufbuild/protobuf";
import { createMethodImplSpec, createServiceImplSpec, type ConnectRouter, type MethodImpl, type MethodImplSpec, type ServiceImpl } from "@connectrpc/connect";

/**
 * A ConnectRouter that also remembers each method's implementation by its request path
 * ("/package.Service/Method"), so that the host's lean gRPC path (grpc-stream-handler.ts) can
 * call the very implementations connect-node serves, with the same interceptors, without
 * connect's per-protocol pipeline in between.
 */
export interface RecordingRouter {
  /** Pass this one to route-mounting functions; everything also reaches the wrapped router. */
  readonly router: ConnectRouter;
  /** Implementations by request path. Only methods mounted without per-service options. */
  readonly methods: ReadonlyMap<string, MethodImplSpec>;
}

/**
 * recordRoutes wraps `target`. Services or methods mounted with their own handler options
 * (interceptors, limits, protocols of their own) are not recorded: connect-node alone knows
 * how to honour those, so their calls keep going through it.
 */
export function recordRoutes(target: ConnectRouter): RecordingRouter {
  const methods = new Map<string, MethodImplSpec>();
  const record = (spec: MethodImplSpec) => methods.set(`/${spec.method.parent.typeName}/${spec.method.name}`, spec);
  const router: ConnectRouter = {
    get handlers() {
      return target.handlers;
    },
    service<T extends DescService>(service: T, implementation: Partial<ServiceImpl<T>>, options?: Parameters<ConnectRouter["service"]>[2]) {
      target.service(service, implementation, options);
      if (!options) Object.values(createServiceImplSpec(service, implementation).methods).forEach(record);
      return router;
    },
    rpc<M extends DescMethod>(method: M, impl: MethodImpl<M>, options?: Parameters<ConnectRouter["rpc"]>[2]) {
      target.rpc(method, impl, options);
      if (!options) record(createMethodImplSpec(method, impl));
      return router;
    },
  };
  return { router, methods };
}
