import type { DescMessage, DescMethod, DescMethodStreaming, DescMethodUnary, MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextValues, type ContextValues, type Interceptor, type StreamResponse, type Transport, type UnaryResponse } from "@connectrpc/connect";
import { runStreamingCall, runUnaryCall } from "@connectrpc/connect/protocol";
import type { Context, Span } from "@opentelemetry/api";
import type { Registry } from "prom-client";
import { inheritedDeadline } from "../common/deadline.js";
import { CodeObservers } from "../common/code-observers.js";
import type { ConsulClient } from "../platform/consul.js";
import type { BackoffOptions } from "./retry/backoff.js";
import type { Balancer } from "./balancing/balancer.js";
import { createBalancer } from "./balancing/registry.js";
import { acquireBucketRotation, type BreakerOptions } from "./health/breaker.js";
import { clientMetrics } from "./telemetry/metrics.js";
import { clientTls, type ClientTlsFiles } from "./wire/tls-files.js";
import { meshClientTls } from "./wire/mesh-tls.js";
import { gateOnIdentity } from "./discovery/identity-gate.js";
import type { MeshIdentity } from "../platform/mesh/identity.js";
import { endCallSpan, startCallSpan } from "./telemetry/tracing.js";
import type { MeshEndpoint } from "./endpoints/endpoint.js";
import type { BreakerState } from "./health/endpoint-health.js";
import { EndpointSet, type SlowStartOptions } from "./endpoints/endpoint-set.js";
import { HedgeDelay, type HedgingOptions } from "./retry/hedging.js";
import type { Instance } from "./discovery/instance.js";
import { outcomeClassifierKey, type OutcomeClassifier } from "./call/outcome-classifier.js";
import type { Resolver } from "./discovery/resolver.js";
import { consulResolver, type ConsulResolverOptions } from "./discovery/consul.js";
import { createRetryBudget, type RetryBudget, type RetryBudgetOptions } from "./retry/budget.js";
import { isIdempotent } from "./retry/policy.js";
import { runCall } from "./call/retrying-call.js";
import type { CallEnvironment, LogicalCall } from "./call/call.js";
import { trackStream, type OpenStreams } from "./call/tracked-stream.js";
import { ChainRouting, type ChainEvent, type RoutingLog, type RoutingView } from "./routing/chain-routing.js";
import { createLogger } from "../platform/log.js";

type HeaderInit = ConstructorParameters<typeof Headers>[0];

/** RetryOptions bound retries and failover. */
export interface RetryOptions {
  /** Attempts per call, the first included. Default 3. */
  maxAttempts?: number;
  backoff?: BackoffOptions;
  /** A budget (share it between transports to pool it) or its options. Default 20% + 10/s over 10 s. */
  budget?: RetryBudget | RetryBudgetOptions;
}

/** MethodOptions override the transport's settings for one method. */
export interface MethodOptions {
  /** Decides this method's attempt outcomes before the transport's classifier. */
  classifier?: OutcomeClassifier;
  /** Hedging for this method (only if the proto marks it idempotent); false turns it off. */
  hedging?: HedgingOptions | false;
}

/** MeshTransportOptions configure `createMeshTransport`. */
export interface MeshTransportOptions extends Omit<ConsulResolverOptions, "service"> {
  /** Service name in Consul. */
  service: string;
  /** Consul client to resolve through; or give `resolver`. */
  consul?: ConsulClient;
  /**
   * Any other source of instances (a static list in tests, another registry). It stays the
   * caller's: `close()` leaves it open.
   */
  resolver?: Resolver;
  /**
   * Balancer by registered name ("round_robin", "random", "least_outstanding", "peak_ewma") or
   * an instance. Default "peak_ewma".
   */
  balancer?: string | Balancer;
  /** Circuit breaker of each instance; false turns breakers off. */
  breaker?: BreakerOptions | false;
  /**
   * The largest share of instances, in percent, that breakers may take out of picks at once
   * (Envoy's `max_ejection_percent`). Default 10. At least one instance may be ejected, and one
   * always stays: a fault every instance shares cannot empty the pool.
   */
  maxEjectionPercent?: number;
  /** Retries and failover; false makes one attempt per call. */
  retry?: RetryOptions | false;
  /**
   * Hedged requests for every method the proto marks idempotent; off by default (`false`).
   * `methods` can turn it on or off per method.
   */
  hedging?: HedgingOptions | false;
  /** Ramps the weight of a newly joined instance up over a window; off by default. */
  slowStart?: SlowStartOptions;
  /** Decides attempt outcomes before the built-in classifier; see `OutcomeClassifier`. */
  classifier?: OutcomeClassifier;
  /** Per-method settings, keyed by method name ("GetOrder") or full name ("meshkit.orders.v1.OrderService/GetOrder"). */
  methods?: Record<string, MethodOptions>;
  /** Deadline of a call whose caller gives none, in ms. Default 10 000. (A stream's bounds only its opening.) */
  timeoutMs?: number;
  /** Longest one attempt (or a stream's opening) may take before it is abandoned for another instance, in ms. Default 5 000. */
  attemptTimeoutMs?: number;
  /** Interceptors around each attempt, on the instance's own transport. */
  interceptors?: Interceptor[];
  /** Interceptors around the whole logical call (all its attempts), outermost first. */
  callInterceptors?: Interceptor[];
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
  tls?: ClientTlsFiles;
  /**
   * Call through Consul's service mesh with this identity (`meshIdentity(consul, { service:
   * "<caller>" })` from meshkit/platform): discover through the mesh view
   * (`/v1/health/connect/<service>`: native services and sidecar proxies alike), present the
   * caller's leaf certificate, and accept a server only when its SPIFFE ID names `service`.
   * Excludes `tls`. The identity stays the caller's: `close()` leaves it open.
   */
  mesh?: MeshIdentity;
  /**
   * Traffic management from Consul's discovery chain (service-router, service-splitter and
   * service-resolver config entries; README, "Traffic management from Consul"): on by default
   * with `consul`; false turns it off (every call then goes to `service` as selected here). A
   * service with no such entries behaves exactly as with it off. Not available with `resolver`.
   */
  discoveryChain?: boolean | DiscoveryChainOptions;
  /** Where the transport logs what it could not apply of a discovery chain. Default a pino logger named "meshkit-client" on stdout, made at the first line. */
  logger?: RoutingLog;
}

/** DiscoveryChainOptions tune how the mesh client follows the discovery chain. */
export interface DiscoveryChainOptions {
  /** How long the first calls wait for the chain before going to the service itself, in ms. Default 2 000. */
  firstAnswerTimeoutMs?: number;
  /** How long a new chain waits for its new targets' first answers before it applies anyway, in ms. Default 1 000. */
  targetReadyTimeoutMs?: number;
  /** How long a target no chain uses any more keeps its connections for calls in flight, in ms. Default 30 000. */
  retireAfterMs?: number;
}

export type MeshEvent =
  | { type: "instances"; service: string; instances: readonly Instance[]; /** A discovery chain target's, when not the service's own set. */ target?: string }
  | { type: "breaker"; service: string; instance: string; state: BreakerState; target?: string }
  | ChainEvent;

/** MeshTransport is a Connect Transport over every instance of one service. */
export interface MeshTransport extends Transport {
  /** The endpoints in use, for inspection: those of the service itself (the discovery chain's targets are in `routing`). */
  readonly endpoints: readonly MeshEndpoint[];
  /** The discovery chain in force and each of its targets' endpoints; undefined with the chain off. */
  readonly routing: RoutingView | undefined;
  /** Stops the watch it made (when it was the last user), breakers, open streams and connections. */
  close(): void;
}

/**
 * createMeshTransport returns a Connect `Transport` whose every call is resolved through Consul
 * (a cached watch, never a registry round-trip per call), balanced, guarded by a circuit breaker
 * per instance, failed over, retried or hedged under a budget, and traced.
 *
 * The call path, in this fixed order: call interceptors -> route (the discovery chain's decision:
 * the target, its route's timeout and retries; nothing for a service without config entries) ->
 * deadline (the caller's, else the one inherited from the call being served, else the route's,
 * else `timeoutMs`) -> tracing span -> [ pick (the
 * endpoint set: breakers, ejection cap, half-open probe, slow start) -> attempt interceptors ->
 * attempt with its own deadline -> one outcome classification, read by health, load and retry ]
 * repeated while the outcome allows a retry or a hedge, attempts and the budget remain.
 *
 * ```ts
 * const transport = createMeshTransport({ service: "echo", consul, balancer: "round_robin" });
 * const client = createClient(EchoService, transport);
 * await client.echo({ message: "hi" }, { timeoutMs: 2000 });
 * ```
 */
export function createMeshTransport(options: MeshTransportOptions): MeshTransport {
  const service = options.service;
  const ownsResolver = !options.resolver;
  if (options.mesh && options.tls) throw new Error("createMeshTransport: give `mesh` or `tls`, not both");
  const discovered = options.resolver ?? (options.consul ? consulResolver(options.consul, { ...options, connect: options.connect ?? Boolean(options.mesh) }) : undefined);
  if (!discovered) throw new Error("createMeshTransport needs `consul` or `resolver`");
  const resolver = options.mesh ? gateOnIdentity(discovered, options.mesh) : discovered;
  const balancer = typeof options.balancer === "object" ? options.balancer : createBalancer(options.balancer ?? "peak_ewma");
  const retry = options.retry === false ? { maxAttempts: 1 } : (options.retry ?? {});
  const budget = retry.budget && "tryWithdraw" in retry.budget ? retry.budget : createRetryBudget(retry.budget);
  const defaultTimeoutMs = options.timeoutMs ?? 10_000;
  const metrics = options.metrics === false ? undefined : clientMetrics(options.metrics);
  const rotation = options.breaker === false ? undefined : acquireBucketRotation(options.breaker?.rollingWindowMs);
  const onEvent = options.onEvent ?? (() => undefined);
  const { tls, stop: stopTlsWatch } = options.mesh ? meshClientTls(options.mesh, service) : clientTls(options.tls);

  // Series that exist from the start, so dashboards and alerts have data before the first event.
  metrics?.budgetExhausted.inc({ service }, 0);
  const callObservers = metrics && new CodeObservers((method, code) => metrics.calls.labels(service, method.name, code));

  const endpointOptions = (sessionTls: typeof tls) => ({
    tls: sessionTls,
    breaker: options.breaker ?? {},
    rotation: rotation?.rotation,
    interceptors: options.interceptors ?? [],
    readMaxBytes: options.readMaxBytes ?? 4 * 1024 * 1024,
    writeMaxBytes: options.writeMaxBytes ?? 4 * 1024 * 1024,
  });
  const endpoints = new EndpointSet({
    service,
    balancer,
    maxEjectionPercent: options.maxEjectionPercent ?? 10,
    slowStart: options.slowStart,
    metrics,
    endpoint: endpointOptions(tls),
    onInstances: (instances) => onEvent({ type: "instances", service, instances }),
    onBreaker: (instance, state) => onEvent({ type: "breaker", service, instance, state }),
  });
  endpoints.apply(resolver.instances);
  const unsubscribe = resolver.subscribe((instances) => endpoints.apply(instances));
  const stalenessKey = {};
  metrics?.stalenessSources.set(stalenessKey, { service, stalenessMs: () => resolver.stalenessMs() });

  const env: CallEnvironment = {
    service,
    endpoints,
    budget,
    maxAttempts: Math.max(1, retry.maxAttempts ?? 3),
    backoff: retry.backoff,
    attemptTimeoutMs: options.attemptTimeoutMs ?? 5_000,
    onRetry: (method, reason) => metrics?.retries.inc({ service, method: method.name, reason }),
    onBudgetExhausted: () => metrics?.budgetExhausted.inc({ service }),
    noInstanceError: (tried, last) => {
      if (last) return last;
      if (endpoints.list.length === 0) {
        const why = resolver.lastError ? ` (${resolver.lastError.message})` : "";
        return new ConnectError(`no passing instance of "${service}"${why}`, Code.Unavailable);
      }
      if (!tried) return new ConnectError(`all ${endpoints.list.length} instances of "${service}" have open circuit breakers`, Code.Unavailable);
      return new ConnectError(`every instance of "${service}" was tried`, Code.Unavailable);
    },
  };

  // Traffic management from the discovery chain: only with Consul (a chain names Consul targets).
  const chainOptions = typeof options.discoveryChain === "object" ? options.discoveryChain : {};
  let defaultLog: RoutingLog | undefined;
  const log: RoutingLog = options.logger ?? {
    warn: (fields, message) => (defaultLog ??= createLogger("meshkit-client")).warn(fields, message),
    info: (fields, message) => (defaultLog ??= createLogger("meshkit-client")).info(fields, message),
  };
  const routing =
    options.consul && !options.resolver && options.discoveryChain !== false
      ? new ChainRouting({
          consul: options.consul,
          service,
          selection: { ...options, connect: options.connect ?? Boolean(options.mesh) },
          own: { set: endpoints, resolver: discovered },
          env,
          newBalancer: () => (typeof options.balancer === "object" ? options.balancer : createBalancer(options.balancer ?? "peak_ewma")),
          newSet: (target, targetBalancer) => {
            // In the mesh, an instance of another service proves that service's identity.
            const targetTls = options.mesh && target.service !== service ? meshClientTls(options.mesh, target.service) : { tls, stop: () => undefined };
            const set = new EndpointSet({
              service,
              balancer: targetBalancer,
              maxEjectionPercent: options.maxEjectionPercent ?? 10,
              slowStart: options.slowStart,
              metrics,
              reportsInstances: false,
              endpoint: { ...endpointOptions(targetTls.tls), connectTimeoutMs: target.connectTimeoutMs },
              onInstances: (instances) => onEvent({ type: "instances", service, instances, target: target.id }),
              onBreaker: (instance, state) => onEvent({ type: "breaker", service, instance, state, target: target.id }),
            });
            return { set, close: () => (set.close(), targetTls.stop()) };
          },
          metrics,
          log,
          onChain: onEvent,
          ...chainOptions,
        })
      : undefined;
  const gated = routing ? routing.gate(resolver) : resolver;

  const methodOptions = (method: DescMethod): MethodOptions | undefined =>
    options.methods?.[method.name] ?? options.methods?.[`${method.parent.typeName}/${method.name}`];
  /**
   * What every call of one method shares, worked out at its first call: its hedging (one hedge
   * delay per method, each keeping its own latency percentile) and its classifiers.
   */
  interface MethodPlan {
    hedge: { delay: HedgeDelay; maxAttempts: number } | undefined;
    /** The method's classifier, then the transport's; only those set. */
    classifiers: readonly OutcomeClassifier[];
  }
  const plans = new Map<DescMethod, MethodPlan>();
  const planOf = (method: DescMethod): MethodPlan => {
    let plan = plans.get(method);
    if (plan) return plan;
    const perMethod = methodOptions(method);
    const hedging = perMethod?.hedging === undefined ? options.hedging : perMethod.hedging;
    plan = {
      hedge: hedging && isIdempotent(method) ? { delay: new HedgeDelay(hedging), maxAttempts: Math.max(2, hedging.maxAttempts ?? 2) } : undefined,
      classifiers: [perMethod?.classifier, options.classifier].filter((classifier) => classifier !== undefined),
    };
    plans.set(method, plan);
    return plan;
  };

  const openStreams: OpenStreams = new Set();

  // Calls check this before awaiting `awaitInstances`: once the resolver has answered (every call
  // but the first few), a call then awaits no promise for it. (An arrow, since TypeScript does
  // not carry `resolver`'s narrowing into the hoisted `unary` and `stream` functions.)
  const resolved = () => gated.resolved;
  const awaitInstances = async (deadline: number, signal: AbortSignal | undefined) => {
    if (gated.resolved) return;
    const timeout = AbortSignal.timeout(Math.max(0, Math.ceil(deadline - performance.now())));
    try {
      await gated.whenResolved(signal ? AbortSignal.any([signal, timeout]) : timeout);
    } catch {
      if (signal?.aborted) throw new ConnectError("call canceled while waiting for Consul", Code.Canceled);
      const why = resolver.lastError ? `: ${resolver.lastError.message}` : "";
      throw new ConnectError(`no answer from the registry about "${service}" before the deadline${why}`, Code.Unavailable);
    }
  };

  /** The classifiers of one call: the caller's own (through its context values) first. */
  const classifiersOf = (plan: MethodPlan, contextValues: ContextValues | undefined): readonly OutcomeClassifier[] => {
    const perCall = contextValues?.get(outcomeClassifierKey);
    return perCall ? [perCall, ...plan.classifiers] : plan.classifiers;
  };

  async function unary<I extends DescMessage, O extends DescMessage>(
    method: DescMethodUnary<I, O>,
    signal: AbortSignal | undefined,
    timeoutMs: number | undefined,
    header: HeaderInit | undefined,
    input: MessageInitShape<I>,
    contextValues?: ContextValues,
  ): Promise<UnaryResponse<I, O>> {
    const started = performance.now();
    // The discovery chain's decision: undefined when the call takes the transport's own path.
    const routed = routing?.decide(method, header);
    const own = started + (routed?.timeoutMs === undefined ? (timeoutMs ?? defaultTimeoutMs) : Math.min(timeoutMs ?? Infinity, routed.timeoutMs));
    const inherited = inheritedDeadline();
    const deadline = inherited === undefined ? own : Math.min(own, inherited);
    const plan = planOf(method);
    const { span, context } = startCallSpan(service, method);
    if (routing !== undefined && span.isRecording()) routing.annotate(span, routed);
    const hashKey = routed !== undefined && routed.hash.length > 0 ? routed.hashKey(header) : undefined;
    const call = new UnaryLogicalCall(method, signal, deadline, header, classifiersOf(plan, contextValues), plan.hedge, span, context, input, contextValues, hashKey);
    budget.deposit();
    let attempts = 0;
    try {
      if (!resolved()) await awaitInstances(deadline, signal);
      const won = await runCall(routed === undefined ? env : routed.env, call);
      attempts = won.attempts;
      if (routed !== undefined) routing!.finished(routed, won.attempt.pick.endpoint, call.span);
      callObservers?.observe(method, 0, (performance.now() - started) / 1000);
      endCallSpan(call.span, 0, undefined, attempts);
      return won.response;
    } catch (caught) {
      const error = ConnectError.from(caught);
      if (routed !== undefined) routing!.finished(routed, undefined, call.span);
      callObservers?.observe(method, error.code, (performance.now() - started) / 1000);
      endCallSpan(call.span, error.code, error, attempts);
      throw error;
    }
  }

  async function stream<I extends DescMessage, O extends DescMessage>(
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
    // Only a deadline someone set goes on the wire (the caller's, or the one inherited from the
    // call being served), as what is left of it at each attempt. Without one, the stream may
    // live as long as it likes; its opening is still bounded by `timeoutMs`.
    const inherited = inheritedDeadline();
    const callers = timeoutMs === undefined ? inherited : Math.min(started + timeoutMs, inherited ?? Infinity);
    // Routed as a unary call is, but for the route's RequestTimeout: a stream lives as long as its caller lets it.
    const routed = routing?.decide(method, header);
    const callEnv = routed === undefined ? env : routed.env;
    const { span, context } = startCallSpan(service, method);
    if (routing !== undefined && span.isRecording()) routing.annotate(span, routed);
    const call: LogicalCall<StreamResponse<I, O>> = {
      method,
      signal,
      deadline: callers ?? started + defaultTimeoutMs,
      header,
      classifiers: classifiersOf(planOf(method), contextValues),
      span,
      traceContext: context,
      deadlineOnWire: callers !== undefined,
      opensStream: true,
      replayable,
      hedge: undefined,
      hashKey: routed !== undefined && routed.hash.length > 0 ? routed.hashKey(header) : undefined,
      send: async (endpoint, wireTimeoutMs, attemptSignal, headers) => {
        const response = await endpoint.transport.stream(method, attemptSignal, wireTimeoutMs, headers, replayable ? toAsync(messages) : input, contextValues);
        return replayable ? await withFirstMessage(response) : response;
      },
    };
    budget.deposit();
    let attempts = 0;
    try {
      if (!resolved()) await awaitInstances(call.deadline, signal);
      const won = await runCall(callEnv, call);
      attempts = won.attempts;
      if (routed !== undefined) routing!.finished(routed, won.attempt.pick.endpoint, call.span);
      return {
        ...won.response,
        message: trackStream(callEnv, call, won, won.response.message, openStreams, (code, error) => {
          callObservers?.observe(method, code, (performance.now() - started) / 1000);
          endCallSpan(call.span, code, error, won.attempts);
        }),
      };
    } catch (caught) {
      const error = ConnectError.from(caught);
      if (routed !== undefined) routing!.finished(routed, undefined, call.span);
      callObservers?.observe(method, error.code, (performance.now() - started) / 1000);
      endCallSpan(call.span, error.code, error, attempts);
      // The last attempt's server answered before failing: give its headers as connect does.
      const answered = signal?.aborted ? undefined : failedAfterAnswer(method, error);
      if (answered) return answered;
      throw error;
    }
  }

  const callInterceptors = options.callInterceptors ?? [];
  return {
    get endpoints() {
      return endpoints.list;
    },

    get routing() {
      return routing?.view;
    },

    unary(method, signal, timeoutMs, header, input, contextValues) {
      if (callInterceptors.length === 0) return unary(method, signal, timeoutMs, header, input, contextValues);
      return runUnaryCall({
        interceptors: callInterceptors,
        signal,
        req: { stream: false, service: method.parent, method, requestMethod: "POST", url: `mesh://${service}/${method.parent.typeName}/${method.name}`, header: new Headers(header), contextValues: contextValues ?? createContextValues(), message: input },
        next: (req) => unary(req.method, req.signal, timeoutMs, req.header, req.message, req.contextValues),
      });
    },

    stream(method, signal, timeoutMs, header, input, contextValues) {
      if (callInterceptors.length === 0) return stream(method, signal, timeoutMs, header, input, contextValues);
      return runStreamingCall({
        interceptors: callInterceptors,
        signal,
        req: { stream: true, service: method.parent, method, requestMethod: "POST", url: `mesh://${service}/${method.parent.typeName}/${method.name}`, header: new Headers(header), contextValues: contextValues ?? createContextValues(), message: input },
        next: (req) => stream(req.method, req.signal, timeoutMs, req.header, req.message, req.contextValues),
      });
    },

    close() {
      unsubscribe();
      if (ownsResolver) resolver.close();
      metrics?.stalenessSources.delete(stalenessKey);
      const closing = new ConnectError(`the mesh transport of "${service}" closed`, Code.Canceled);
      for (const release of [...openStreams]) release(closing);
      routing?.close();
      endpoints.close();
      rotation?.release();
      stopTlsWatch();
    },
  };
}

/**
 * UnaryLogicalCall is one unary call as the retrying loop runs it. A class, so that `send` is a
 * method rather than a closure over the request made for every call.
 */
class UnaryLogicalCall<I extends DescMessage, O extends DescMessage> implements LogicalCall<UnaryResponse<I, O>> {
  readonly deadlineOnWire = true;
  readonly opensStream = false;
  readonly replayable = true;

  constructor(
    readonly method: DescMethodUnary<I, O>,
    readonly signal: AbortSignal | undefined,
    readonly deadline: number,
    readonly header: HeaderInit | undefined,
    readonly classifiers: readonly OutcomeClassifier[],
    readonly hedge: LogicalCall<unknown>["hedge"],
    readonly span: Span,
    readonly traceContext: Context,
    private readonly input: MessageInitShape<I>,
    private readonly contextValues: ContextValues | undefined,
    readonly hashKey: string | undefined,
  ) {}

  send(endpoint: MeshEndpoint, timeoutMs: number | undefined, signal: AbortSignal | undefined, headers: Headers | undefined): Promise<UnaryResponse<I, O>> {
    return endpoint.transport.unary(this.method, signal, timeoutMs, headers, this.input, this.contextValues);
  }
}

/**
 * The response headers and trailers of a server stream that failed before its first message,
 * by its error: connect's clients give them to the caller (`onHeader`, `onTrailer`) and raise the
 * error when the messages are read; `stream()` does the same once retries are over.
 */
const answeredBeforeFailing = new WeakMap<ConnectError, { header: Headers; trailer: Headers }>();

/**
 * failedAfterAnswer is the stream response of a call whose server answered and then failed before
 * any message: its headers and trailers, and messages that raise the failure.
 */
function failedAfterAnswer<I extends DescMessage, O extends DescMessage>(method: DescMethodStreaming<I, O>, error: ConnectError): StreamResponse<I, O> | undefined {
  const answered = answeredBeforeFailing.get(error);
  if (!answered) return undefined;
  // eslint-disable-next-line require-yield -- a stream of no messages that fails when read
  const messages = (async function* (): AsyncGenerator<MessageShape<O>> {
    throw error;
  })();
  return { stream: true, service: method.parent, method, header: answered.header, trailer: answered.trailer, message: messages };
}

/**
 * withFirstMessage waits for a server stream's first message (or its end) before the stream
 * counts as open. A server that fails before its first message answers "trailers-only", which
 * connect reports only when the messages are read: without this, such a failure could never be
 * retried on another instance. (connect-node servers send their headers with the first message
 * anyway, so the open bound already applied to it.)
 */
async function withFirstMessage<R extends { message: AsyncIterable<unknown>; header: Headers; trailer: Headers }>(response: R): Promise<R> {
  const iterator = response.message[Symbol.asyncIterator]();
  let first: IteratorResult<unknown>;
  try {
    first = await iterator.next();
  } catch (caught) {
    // The server answered (headers, maybe trailers-only) and failed before any message: keep
    // what it said, for the caller to get as connect would give it if this failure is final.
    if (caught instanceof ConnectError) answeredBeforeFailing.set(caught, { header: response.header, trailer: response.trailer });
    throw caught;
  }
  async function* rest() {
    if (first.done) return;
    yield first.value;
    for (let next = await iterator.next(); !next.done; next = await iterator.next()) yield next.value;
  }
  const messages = rest();
  // Stopping early must stop the underlying stream too.
  const stop = messages.return.bind(messages);
  messages.return = async (value) => {
    await iterator.return?.();
    return stop(value);
  };
  return { ...response, message: messages };
}

async function* toAsync<T>(items: readonly T[]): AsyncIterable<T> {
  yield* items;
}
