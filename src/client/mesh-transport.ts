import { readFileSync } from "node:fs";
import type http2 from "node:http2";
import { setTimeout as sleep } from "node:timers/promises";
import { watchTlsFiles } from "../platform/tls-files.js";
import type { DescMessage, DescMethodStreaming, DescMethodUnary, MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, type ContextValues, type Interceptor, type StreamResponse, type Transport, type UnaryResponse } from "@connectrpc/connect";
import type { Span } from "@opentelemetry/api";
import type { Registry } from "prom-client";
import { inheritedDeadline } from "../common/deadline.js";
import type { ConsulClient } from "../platform/consul.js";
import { backoffDelay, type BackoffOptions } from "./backoff.js";
import { createBalancer, emptyPicker, type Balancer, type Picker } from "./balancer.js";
import { acquireBucketRotation, isBreakerOpen, type BreakerOptions } from "./breaker.js";
import { CodeObservers } from "../common/code-observers.js";
import { breakerStateValue, clientMetrics } from "./client-metrics.js";
import { endCallSpan, injectTraceContext, startCallSpan } from "./client-tracing.js";
import { MeshEndpoint, type BreakerState } from "./endpoint.js";
import type { Instance } from "./instance.js";
import type { Resolver } from "./resolver.js";
import { consulResolver, type ConsulResolverOptions } from "./resolver-consul.js";
import { attemptError, isRetryable, neverSent } from "./retry-policy.js";
import { createRetryBudget, type RetryBudget, type RetryBudgetOptions } from "./retry-budget.js";
// The built-in balancers register themselves by name.
import "./balancer-round-robin.js";
import "./balancer-random.js";
import "./balancer-least-outstanding.js";
import "./balancer-peak-ewma.js";

type HeaderInit = ConstructorParameters<typeof Headers>[0];

/** RetryOptions bound retries and failover. */
export interface RetryOptions {
  /** Attempts per call, the first included. Default 3. */
  maxAttempts?: number;
  backoff?: BackoffOptions;
  /** A budget (share it between transports to pool it) or its options. Default 20% + 10/s over 10 s. */
  budget?: RetryBudget | RetryBudgetOptions;
}

/** MeshTransportOptions configure `createMeshTransport`. */
export interface MeshTransportOptions extends Omit<ConsulResolverOptions, "service"> {
  /** Service name in Consul. */
  service: string;
  /** Consul client to resolve through; or give `resolver`. */
  consul?: ConsulClient;
  /** Any other source of instances (a static list in tests, another registry). */
  resolver?: Resolver;
  /**
   * Balancer by registered name ("round_robin", "random", "least_outstanding", "peak_ewma") or
   * an instance. Default "peak_ewma".
   */
  balancer?: string | Balancer;
  /** Circuit breaker of each instance; false turns breakers off. */
  breaker?: BreakerOptions | false;
  /** Retries and failover; false makes one attempt per call. */
  retry?: RetryOptions | false;
  /** Deadline of a call whose caller gives none, in ms. Default 10 000. */
  timeoutMs?: number;
  /** Longest one attempt may take before it is abandoned for another instance, in ms. Default 5 000. */
  attemptTimeoutMs?: number;
  /** Interceptors run around each attempt, on the instance's own transport. */
  interceptors?: Interceptor[];
  /** Largest message read or written, in bytes. Default 4 MiB. */
  readMaxBytes?: number;
  writeMaxBytes?: number;
  /** Prometheus registry for the client metrics (default prom-client's global one); false for none. */
  metrics?: Registry | false;
  /** Told of breaker changes and instance set changes; default silent. */
  onEvent?: (event: MeshEvent) => void;
  /**
   * Call instances over TLS, trusting `caFile`; with `certFile` and `keyFile`, present a client
   * certificate (mutual TLS). Files are re-read when they change. `serverName` overrides the name
   * checked against the server certificate (default: the instance address).
   */
  tls?: { caFile: string; certFile?: string; keyFile?: string; serverName?: string };
}

export type MeshEvent =
  | { type: "instances"; service: string; instances: readonly Instance[] }
  | { type: "breaker"; service: string; instance: string; state: BreakerState };

/** MeshTransport is a Connect Transport over every instance of one service. */
export interface MeshTransport extends Transport {
  /** The endpoints in use, for inspection. */
  readonly endpoints: readonly MeshEndpoint[];
  /** Stops the watch (when it was the last user), breakers and connections. */
  close(): void;
}

/**
 * createMeshTransport returns a Connect `Transport` whose every call is resolved through Consul
 * (a cached watch, never a registry round-trip per call), balanced, guarded by a circuit breaker
 * per instance, failed over and retried under a budget, and traced.
 *
 * The call path, in this fixed order: deadline (the caller's, else the one inherited from the
 * call being served, else `timeoutMs`) -> tracing span -> [ pick (skipping open breakers and
 * instances already tried) -> breaker -> attempt with its own deadline ] repeated while the
 * failure allows a retry, attempts and the budget remain, after backoff.
 *
 * ```ts
 * const transport = createMeshTransport({ service: "echo", consul, balancer: "round_robin" });
 * const client = createClient(EchoService, transport);
 * await client.echo({ message: "hi" }, { timeoutMs: 2000 });
 * ```
 */
export function createMeshTransport(options: MeshTransportOptions): MeshTransport {
  const service = options.service;
  const resolver = options.resolver ?? (options.consul ? consulResolver(options.consul, options) : undefined);
  if (!resolver) throw new Error("createMeshTransport needs `consul` or `resolver`");
  const balancer = typeof options.balancer === "object" ? options.balancer : createBalancer(options.balancer ?? "peak_ewma");
  const retry = options.retry === false ? { maxAttempts: 1 } : (options.retry ?? {});
  const maxAttempts = Math.max(1, retry.maxAttempts ?? 3);
  const budget = retry.budget && "tryWithdraw" in retry.budget ? retry.budget : createRetryBudget(retry.budget);
  const defaultTimeoutMs = options.timeoutMs ?? 10_000;
  const attemptTimeoutMs = options.attemptTimeoutMs ?? 5_000;
  const metrics = options.metrics === false ? undefined : clientMetrics(options.metrics);
  const rotationWindow = options.breaker === false ? undefined : options.breaker?.rollingWindowMs;
  const rotation = options.breaker === false ? undefined : acquireBucketRotation(rotationWindow);
  const onEvent = options.onEvent ?? (() => undefined);

  // Series that exist from the start, so dashboards and alerts have data before the first event.
  metrics?.budgetExhausted.inc({ service }, 0);
  const callObservers = metrics && new CodeObservers((method, code) => metrics.calls.labels(service, method.name, code));
  const attemptObservers = new WeakMap<MeshEndpoint, CodeObservers>();
  const observeAttempt = (endpoint: MeshEndpoint, method: DescMethodUnary | DescMethodStreaming, code: Code | 0, seconds: number) => {
    if (!metrics) return;
    let observers = attemptObservers.get(endpoint);
    if (!observers) {
      observers = new CodeObservers((m, c) => metrics.attempts.labels(service, m.name, endpoint.instance.id, c));
      attemptObservers.set(endpoint, observers);
    }
    observers.observe(method, code, seconds);
  };

  // --- the endpoint set, rebuilt from the resolver, and the picker over those that can take calls
  const endpoints = new Map<string, MeshEndpoint>();
  let picker: Picker = emptyPicker;
  let endpointList: MeshEndpoint[] = [];
  const rebuildPicker = () => {
    endpointList = [...endpoints.values()];
    picker = balancer.picker(endpointList.filter((endpoint) => endpoint.breakerState !== "open"));
  };
  const onBreakerState = (endpoint: MeshEndpoint, state: BreakerState) => {
    metrics?.breakerState.set({ service, instance: endpoint.instance.id }, breakerStateValue[state]);
    metrics?.breakerTransitions.inc({ service, instance: endpoint.instance.id, state });
    onEvent({ type: "breaker", service, instance: endpoint.instance.id, state });
    if (endpoints.get(endpointKey(endpoint.instance)) === endpoint) rebuildPicker();
  };
  const tls = options.tls && clientTlsOptions(options.tls);
  const stopTlsWatch =
    tls && options.tls?.certFile && options.tls.keyFile
      ? watchTlsFiles(
          { certFile: options.tls.certFile, keyFile: options.tls.keyFile, caFile: options.tls.caFile },
          (fresh) => Object.assign(tls, fresh),
          () => undefined, // a half-written file: keep the old material, the next change retries
        )
      : () => undefined;
  const endpointOptions = {
    tls,
    breaker: options.breaker ?? {},
    rotation: rotation?.rotation,
    interceptors: options.interceptors ?? [],
    readMaxBytes: options.readMaxBytes ?? 4 * 1024 * 1024,
    writeMaxBytes: options.writeMaxBytes ?? 4 * 1024 * 1024,
    onBreakerState,
  };
  const applyInstances = (instances: readonly Instance[]) => {
    const seen = new Set<string>();
    for (const instance of instances) {
      const key = endpointKey(instance);
      seen.add(key);
      const existing = endpoints.get(key);
      if (existing) existing.instance = instance; // weight, tags or meta may have changed
      else {
        endpoints.set(key, new MeshEndpoint(instance, endpointOptions));
        metrics?.breakerState.set({ service, instance: instance.id }, breakerStateValue.closed);
      }
    }
    for (const [key, endpoint] of endpoints) {
      if (seen.has(key)) continue;
      endpoints.delete(key);
      endpoint.close();
      metrics?.breakerState.remove({ service, instance: endpoint.instance.id });
    }
    rebuildPicker();
    metrics?.resolverInstances.set({ service }, instances.length);
    onEvent({ type: "instances", service, instances });
  };
  applyInstances(resolver.instances);
  const unsubscribe = resolver.subscribe(applyInstances);
  metrics?.stalenessSources.set(service, () => resolver.stalenessMs());

  // --- one call
  const deadlineOf = (timeoutMs: number | undefined): number => {
    const own = performance.now() + (timeoutMs ?? defaultTimeoutMs);
    const inherited = inheritedDeadline();
    return inherited === undefined ? own : Math.min(own, inherited);
  };

  const awaitInstances = async (deadline: number, signal: AbortSignal | undefined) => {
    if (resolver.resolved) return;
    const timeout = AbortSignal.timeout(Math.max(0, Math.ceil(deadline - performance.now())));
    try {
      await resolver.whenResolved(signal ? AbortSignal.any([signal, timeout]) : timeout);
    } catch {
      if (signal?.aborted) throw new ConnectError("call canceled while waiting for Consul", Code.Canceled);
      const why = resolver.lastError ? `: ${resolver.lastError.message}` : "";
      throw new ConnectError(`no answer from the registry about "${service}" before the deadline${why}`, Code.Unavailable);
    }
  };

  const noInstanceError = (tried: ReadonlySet<MeshEndpoint> | undefined, last: ConnectError | undefined): ConnectError => {
    if (last) return last;
    if (endpointList.length === 0) {
      const why = resolver.lastError ? ` (${resolver.lastError.message})` : "";
      return new ConnectError(`no passing instance of "${service}"${why}`, Code.Unavailable);
    }
    if (!tried) return new ConnectError(`all ${endpointList.length} instances of "${service}" have open circuit breakers`, Code.Unavailable);
    return new ConnectError(`every instance of "${service}" was tried`, Code.Unavailable);
  };

  /**
   * The retry loop shared by unary calls and stream opens. `attempt` runs on one endpoint with a
   * deadline and the headers to send; it returns the response or throws.
   */
  async function callWithRetries<R>(
    method: DescMethodUnary | DescMethodStreaming,
    signal: AbortSignal | undefined,
    timeoutMs: number | undefined,
    header: HeaderInit | undefined,
    canRetry: boolean,
    attempt: (endpoint: MeshEndpoint, attemptTimeoutMs: number, headers: Headers) => Promise<R>,
    onSuccess: (response: R, endpoint: MeshEndpoint, attemptStarted: number, span: Span, attempts: number) => R,
  ): Promise<R> {
    const started = performance.now();
    const deadline = deadlineOf(timeoutMs);
    const { span, context } = startCallSpan(service, method);
    budget.deposit();
    let tried: Set<MeshEndpoint> | undefined;
    let lastError: ConnectError | undefined;
    let attempts = 0;
    try {
      await awaitInstances(deadline, signal);
      for (;;) {
        const endpoint = picker.pick(tried) as MeshEndpoint | undefined;
        if (!endpoint) throw noInstanceError(tried, lastError);
        const remaining = deadline - performance.now();
        if (remaining <= 0) throw new ConnectError(`deadline exceeded after ${attempts} attempts`, Code.DeadlineExceeded);
        attempts++;
        const headers = new Headers(header);
        injectTraceContext(context, headers);
        const attemptStarted = performance.now();
        endpoint.load.started();
        let breakerRefused = false;
        try {
          // gRPC's grpc-timeout carries whole units: send whole milliseconds.
          const attemptTimeout = Math.max(1, Math.floor(Math.min(remaining, attemptTimeoutMs)));
          // The breaker judges the normalized error (a reset connection is UNAVAILABLE).
          const response = await endpoint.run(() =>
            attempt(endpoint, attemptTimeout, headers).catch((error: unknown) => {
              throw attemptError(error, endpoint.instance.id, false, signal?.aborted);
            }),
          );
          recordAttempt(span, endpoint, attempts, 0);
          return onSuccess(response, endpoint, attemptStarted, span, attempts);
        } catch (caught) {
          breakerRefused = isBreakerOpen(caught);
          const error = attemptError(caught, endpoint.instance.id, breakerRefused, signal?.aborted);
          lastError = error;
          recordAttempt(span, endpoint, attempts, error.code);
          if (!breakerRefused) {
            endpoint.load.finished(performance.now() - attemptStarted, performance.now());
            observeAttempt(endpoint, method, error.code, (performance.now() - attemptStarted) / 1000);
          } else {
            endpoint.load.finished(0, performance.now());
          }
          const sent = !neverSent(caught, breakerRefused);
          if (signal?.aborted || !canRetry || attempts >= maxAttempts || !isRetryable(error, method, sent)) throw error;
          if (!budget.tryWithdraw()) {
            metrics?.budgetExhausted.inc({ service });
            throw error;
          }
          metrics?.retries.inc({ service, method: method.name, reason: Code[error.code] ?? "unknown" });
          (tried ??= new Set()).add(endpoint);
          // A request that never left goes to the next instance at once; one that may have
          // reached an unwell instance waits a jittered backoff first.
          if (sent) {
            const delay = backoffDelay(attempts, retry.backoff);
            if (performance.now() + delay >= deadline) throw error;
            await sleep(delay, undefined, signal ? { signal } : undefined).catch(() => {
              throw error;
            });
          }
        }
      }
    } catch (caught) {
      const error = ConnectError.from(caught);
      callObservers?.observe(method, error.code, (performance.now() - started) / 1000);
      endCallSpan(span, error.code, error, attempts);
      throw error;
    }
  }

  function recordAttempt(span: Span, endpoint: MeshEndpoint, attempt: number, code: number) {
    span.addEvent("attempt", {
      attempt,
      "meshkit.instance": endpoint.instance.id,
      "server.address": endpoint.instance.address,
      "server.port": endpoint.instance.port,
      "rpc.grpc.status_code": code,
    });
    span.setAttribute("server.address", endpoint.instance.address);
    span.setAttribute("server.port", endpoint.instance.port);
  }

  return {
    get endpoints() {
      return endpointList;
    },

    unary<I extends DescMessage, O extends DescMessage>(
      method: DescMethodUnary<I, O>,
      signal: AbortSignal | undefined,
      timeoutMs: number | undefined,
      header: HeaderInit | undefined,
      input: MessageInitShape<I>,
      contextValues?: ContextValues,
    ): Promise<UnaryResponse<I, O>> {
      const started = performance.now();
      return callWithRetries(
        method,
        signal,
        timeoutMs,
        header,
        true,
        (endpoint, attemptTimeout, headers) => endpoint.transport.unary(method, signal, attemptTimeout, headers, input, contextValues),
        (response, endpoint, attemptStarted, span, attempts) => {
          const now = performance.now();
          endpoint.load.finished(now - attemptStarted, now);
          observeAttempt(endpoint, method, 0, (now - attemptStarted) / 1000);
          callObservers?.observe(method, 0, (now - started) / 1000);
          endCallSpan(span, 0, undefined, attempts);
          return response;
        },
      );
    },

    async stream<I extends DescMessage, O extends DescMessage>(
      method: DescMethodStreaming<I, O>,
      signal: AbortSignal | undefined,
      timeoutMs: number | undefined,
      header: HeaderInit | undefined,
      input: AsyncIterable<MessageInitShape<I>>,
      contextValues?: ContextValues,
    ): Promise<StreamResponse<I, O>> {
      // A server-streaming request is one message: read it once, and a failed open can be
      // retried elsewhere. Client and bidi streams cannot be replayed: one attempt.
      const replayable = method.methodKind === "server_streaming";
      const messages: MessageInitShape<I>[] = [];
      if (replayable) for await (const message of input) messages.push(message);
      const started = performance.now();
      // Only a deadline someone set goes on the wire: the caller's, or what is left of the one
      // inherited from the call being served. The stream's opening is bounded by the default.
      const inherited = inheritedDeadline();
      const deadline = timeoutMs ?? (inherited === undefined ? undefined : Math.max(1, Math.floor(inherited - started)));
      return callWithRetries(
        method,
        signal,
        deadline ?? defaultTimeoutMs,
        header,
        replayable,
        // A stream has no per-attempt timeout (it may live long); only the call's deadline,
        // when the caller set one, goes on the wire.
        (endpoint, _attemptTimeout, headers) =>
          endpoint.transport.stream(method, signal, deadline, headers, replayable ? toAsync(messages) : input, contextValues),
        (response, endpoint, attemptStarted, span, attempts) => ({
          ...response,
          message: trackStream(response.message, endpoint, method, attemptStarted, started, span, attempts),
        }),
      );
    },

    close() {
      unsubscribe();
      resolver.close();
      metrics?.stalenessSources.delete(service);
      for (const endpoint of endpoints.values()) endpoint.close();
      endpoints.clear();
      endpointList = [];
      picker = emptyPicker;
      rotation?.release();
      stopTlsWatch();
    },
  };

  /** Ends the bookkeeping of a stream when the caller has read it to the end, or stopped. */
  async function* trackStream<T>(
    messages: AsyncIterable<T>,
    endpoint: MeshEndpoint,
    method: DescMethodStreaming,
    attemptStarted: number,
    callStarted: number,
    span: Span,
    attempts: number,
  ): AsyncIterable<T> {
    let code: Code | 0 = 0;
    let failure: ConnectError | undefined;
    try {
      yield* messages;
    } catch (caught) {
      failure = ConnectError.from(caught);
      code = failure.code;
      throw failure;
    } finally {
      const now = performance.now();
      endpoint.load.finished(now - attemptStarted, now);
      observeAttempt(endpoint, method, code, (now - attemptStarted) / 1000);
      callObservers?.observe(method, code, (now - callStarted) / 1000);
      endCallSpan(span, code, failure, attempts);
    }
  }
}

function clientTlsOptions(files: NonNullable<MeshTransportOptions["tls"]>): http2.SecureClientSessionOptions {
  return {
    ca: readFileSync(files.caFile),
    ...(files.certFile && files.keyFile ? { cert: readFileSync(files.certFile), key: readFileSync(files.keyFile) } : {}),
    ...(files.serverName ? { servername: files.serverName } : {}),
  };
}

function endpointKey(instance: Instance): string {
  return `${instance.id}|${instance.address}|${instance.port}`;
}

async function* toAsync<T>(items: readonly T[]): AsyncIterable<T> {
  yield* items;
}

