import type { EventEmitter } from "node:events";
import type http2 from "node:http2";
import type { Interceptor } from "@connectrpc/connect";
import type { Endpoint } from "./balancer.js";
import { createBreaker, type Breaker, type BreakerOptions } from "./breaker.js";
import { MutableEndpointLoad } from "./endpoint-load.js";
import { createGrpcJsTransport, type GrpcJsTransport } from "./grpc-js-transport.js";
import type { Instance } from "./instance.js";

export type BreakerState = "closed" | "half_open" | "open";

/** Options shared by every endpoint of one mesh transport. */
export interface EndpointOptions {
  breaker: BreakerOptions | false;
  rotation: EventEmitter | undefined;
  interceptors: Interceptor[];
  readMaxBytes: number;
  writeMaxBytes: number;
  /** Called when the breaker opens, half-opens or closes. */
  onBreakerState: (endpoint: MeshEndpoint, state: BreakerState) => void;
  /**
   * TLS session options shared by every endpoint (ca, cert, key, servername). The transport
   * updates this object in place when the files change: each new connection reads it afresh.
   */
  tls: http2.SecureClientSessionOptions | undefined;
}

/** How long a leaving instance keeps its connection for calls still in flight. */
const leaveGraceMs = 30_000;

/**
 * MeshEndpoint is one instance as the mesh transport uses it: one grpc-js channel (one HTTP/2
 * connection reused by every call, pinged, reopened on demand, closed when the instance leaves;
 * see grpc-js-transport.ts), its breaker and its load.
 */
export class MeshEndpoint implements Endpoint {
  readonly load = new MutableEndpointLoad();
  readonly transport: GrpcJsTransport;
  readonly breaker: Breaker | undefined;
  breakerState: BreakerState = "closed";

  constructor(
    public instance: Instance,
    options: EndpointOptions,
  ) {
    this.transport = createGrpcJsTransport({
      address: instance.address,
      port: instance.port,
      tls: options.tls,
      interceptors: options.interceptors,
      readMaxBytes: options.readMaxBytes,
      writeMaxBytes: options.writeMaxBytes,
    });
    if (options.breaker !== false && options.rotation) {
      const breaker = createBreaker(options.breaker, options.rotation);
      const enter = (state: BreakerState) => () => {
        this.breakerState = state;
        options.onBreakerState(this, state);
      };
      breaker.on("open", enter("open"));
      breaker.on("halfOpen", enter("half_open"));
      breaker.on("close", enter("closed"));
      this.breaker = breaker;
    }
  }

  /** Runs one attempt through the breaker (when there is one). */
  run<T>(attempt: () => Promise<T>): Promise<T> {
    return this.breaker ? (this.breaker.fire(attempt) as Promise<T>) : attempt();
  }

  /**
   * close retires the endpoint: its breaker stops at once (no timers left behind); its connection
   * closes when the calls in flight have finished, or after a grace period.
   */
  close(): void {
    this.breaker?.shutdown();
    const started = performance.now();
    const closeWhenIdle = () => {
      if (this.load.outstanding <= 0 || performance.now() - started > leaveGraceMs) {
        this.transport.close();
      } else {
        setTimeout(closeWhenIdle, 100).unref();
      }
    };
    closeWhenIdle();
  }
}
