import type { EventEmitter } from "node:events";
import type http2 from "node:http2";
import type { Interceptor, Transport } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import type { Endpoint } from "./balancer.js";
import type { BreakerOptions } from "./breaker.js";
import { EndpointHealth, type BreakerState } from "./endpoint-health.js";
import { MutableEndpointLoad } from "./endpoint-load.js";
import type { Instance } from "./instance.js";

export type { BreakerState } from "./endpoint-health.js";

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
 * MeshEndpoint is one instance as the mesh transport uses it: one HTTP/2 connection (reused by
 * every call, reopened on demand, closed when the instance leaves), its health (the breaker)
 * and its load.
 */
export class MeshEndpoint implements Endpoint {
  readonly load = new MutableEndpointLoad();
  readonly transport: Transport;
  readonly health: EndpointHealth;
  /** performance.now() when the endpoint joined: slow start ramps its weight from there. */
  joinedAt = performance.now();
  /** The weight balancers use: the instance's, ramped up during slow start (set by the endpoint set). */
  weight: number;
  #session: Http2SessionManager;

  constructor(
    public instance: Instance,
    options: EndpointOptions,
  ) {
    const scheme = options.tls ? "https" : "http";
    const baseUrl = `${scheme}://${instance.address.includes(":") ? `[${instance.address}]` : instance.address}:${instance.port}`;
    // Pings find a connection that died silently (a frozen or unplugged host) within ~20 s even
    // with no call in flight; an idle connection is closed after 5 minutes.
    this.#session = new Http2SessionManager(baseUrl, { pingIntervalMs: 10_000, pingTimeoutMs: 10_000, idleConnectionTimeoutMs: 300_000 }, options.tls);
    this.transport = createGrpcTransport({
      baseUrl,
      sessionManager: this.#session,
      interceptors: options.interceptors,
      readMaxBytes: options.readMaxBytes,
      writeMaxBytes: options.writeMaxBytes,
    });
    this.weight = instance.weight;
    this.health = new EndpointHealth(options.breaker, options.rotation, (state) => options.onBreakerState(this, state));
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
        this.#session.abort();
      } else {
        setTimeout(closeWhenIdle, 100).unref();
      }
    };
    closeWhenIdle();
  }
}
