import type { EventEmitter } from "node:events";
import type http2 from "node:http2";
import type { Interceptor } from "@connectrpc/connect";
import type { Endpoint } from "../balancing/balancer.js";
import type { BreakerOptions } from "../health/breaker.js";
import { EndpointHealth, type BreakerState } from "../health/endpoint-health.js";
import { MutableEndpointLoad } from "../balancing/endpoint-load.js";
import { createGrpcJsTransport, type GrpcJsTransport } from "../wire/grpc-js-wire.js";
import type { Instance } from "../discovery/instance.js";

export type { BreakerState } from "../health/endpoint-health.js";

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
  /** Longest a unary call waits for a connection, in ms (a discovery chain target's `ConnectTimeout`); default none. */
  connectTimeoutMs?: number | undefined;
}

/** How long a leaving instance keeps its connection for calls still in flight. */
const leaveGraceMs = 30_000;

/**
 * MeshEndpoint is one instance as the mesh transport uses it: its transport (unary calls on one
 * HTTP/2 connection of its own, streams on a grpc-js channel opened at the first stream; each
 * reused by every call, pinged, reopened on demand, closed when the instance leaves; see
 * wire/grpc-js-wire.ts), its health (the breaker) and its load.
 */
export class MeshEndpoint implements Endpoint {
  readonly load = new MutableEndpointLoad();
  readonly health: EndpointHealth;
  #transport: GrpcJsTransport | undefined;
  /** performance.now() when the endpoint joined: slow start ramps its weight from there. */
  joinedAt = performance.now();
  /** The weight balancers use: the instance's, ramped up during slow start (set by the endpoint set). */
  weight: number;
  /** The endpoint set's generation that last named this endpoint's instance (endpoint-set.ts). */
  seenIn = 0;

  constructor(
    public instance: Instance,
    private readonly options: EndpointOptions,
  ) {
    this.weight = instance.weight;
    this.health = new EndpointHealth(options.breaker, options.rotation, (state) => options.onBreakerState(this, state));
  }

  /**
   * The endpoint's transport, made on its first call: of a service's thousands of instances a
   * client may call a few, and a transport's connections and buffers are heap that every
   * discovery change would pay for in garbage collection. A connection opens on its first call
   * anyway, so making the transport then adds only its construction to that call.
   */
  get transport(): GrpcJsTransport {
    const options = this.options;
    return (this.#transport ??= createGrpcJsTransport({
      address: this.instance.address,
      port: this.instance.port,
      tls: options.tls,
      interceptors: options.interceptors,
      readMaxBytes: options.readMaxBytes,
      writeMaxBytes: options.writeMaxBytes,
      unaryOverHttp2: true,
      ...(options.connectTimeoutMs !== undefined ? { connectTimeoutMs: options.connectTimeoutMs } : {}),
    }));
  }

  /** The breaker state, for inspection. */
  get breakerState(): BreakerState {
    return this.health.state;
  }

  /**
   * close retires the endpoint: its breaker stops at once (no timers left behind); its connection
   * closes when the calls in flight have finished, or after a grace period.
   */
  close(): void {
    this.health.close();
    const started = performance.now();
    const closeWhenIdle = () => {
      if (this.load.outstanding <= 0 || performance.now() - started > leaveGraceMs) {
        this.#transport?.close();
      } else {
        setTimeout(closeWhenIdle, 100).unref();
      }
    };
    closeWhenIdle();
  }
}
