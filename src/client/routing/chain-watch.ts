import type { ConsulClient } from "../../platform/consul.js";
import { startBlockingQuery, type BlockingQuery } from "../../platform/consul-blocking.js";
import type { CompiledDiscoveryChain, DiscoveryChainResponse } from "./chain.js";

/** ChainWatchOptions select one service's chain and time its blocking query. */
export interface ChainWatchOptions {
  service: string;
  /** Datacenter whose servers compile and answer; default the agent's own. */
  dc?: string | undefined;
  /** Longest a blocking query waits, in seconds. Default 30. */
  waitSeconds?: number | undefined;
  /** Least time between two queries, in ms. Default 100. */
  minQueryIntervalMs?: number | undefined;
  /** Longest wait between retries while Consul is out of reach, in ms. Default 10 000. */
  maxRetryDelayMs?: number | undefined;
  /**
   * After the agent lost its state (its index went backwards: restarted without its data), its
   * answers are not believed for this long, in ms, while config entries are written again: the
   * last chain keeps applying. Default 15 000.
   */
  resetGraceMs?: number | undefined;
}

/** What a watch tells its listeners: a new chain, or that the first answer failed. */
export type ChainUpdate = { kind: "chain"; chain: CompiledDiscoveryChain; text: string } | { kind: "unavailable"; error: Error };

/** ChainWatch is one handle on the shared watch of a service's discovery chain. */
export interface ChainWatch {
  /** The last chain Consul answered, and its JSON text; undefined before the first answer. */
  readonly current: { chain: CompiledDiscoveryChain; text: string } | undefined;
  /** The first query failed (or has not answered yet after one error): the caller may fall back. */
  readonly failing: Error | undefined;
  /** Calls `listener` with each changed chain, and once with a failure before any chain. */
  subscribe(listener: (update: ChainUpdate) => void): () => void;
  stalenessMs(): number;
  readonly lastError: Error | undefined;
  close(): void;
}

/**
 * watchDiscoveryChain keeps a service's compiled discovery chain current from
 * `GET /v1/discovery-chain/<service>` as a Consul blocking query: Consul wakes it when any
 * service-router, -splitter, -resolver or -defaults entry the chain reads changes (a
 * `consul config write`, the UI, the API), so a change arrives one round trip after Consul
 * accepted it. Clients of one Consul client asking for one chain with the same options share one
 * query; it stops when the last handle closes.
 *
 * Fail static: while Consul is out of reach or answers an error, the last chain keeps applying,
 * and the query retries with backoff (platform/consul-blocking.ts). An answer that is the same
 * text as the last (Consul wakes blocking queries on unrelated writes too) is not news.
 */
export function watchDiscoveryChain(consul: ConsulClient, options: ChainWatchOptions): ChainWatch {
  let watches = shared.get(consul);
  if (!watches) shared.set(consul, (watches = new Map()));
  const key = JSON.stringify([options.service, options.dc ?? "", options.waitSeconds ?? 30, options.minQueryIntervalMs ?? 100, options.maxRetryDelayMs ?? 10_000, options.resetGraceMs ?? 15_000]);
  let watch = watches.get(key);
  if (!watch) {
    const map = watches;
    watch = new SharedChainWatch(consul, options, () => map.delete(key));
    map.set(key, watch);
  }
  return watch.handle();
}

const shared = new WeakMap<ConsulClient, Map<string, SharedChainWatch>>();

class SharedChainWatch {
  current: { chain: CompiledDiscoveryChain; text: string } | undefined;
  failing: Error | undefined;
  #handles = 0;
  #listeners = new Set<(update: ChainUpdate) => void>();
  #holding: { timer: NodeJS.Timeout; latest: () => void } | undefined;
  readonly #query: BlockingQuery;

  constructor(
    consul: ConsulClient,
    options: ChainWatchOptions,
    private readonly onStopped: () => void,
  ) {
    const resetGraceMs = options.resetGraceMs ?? 15_000;
    this.#query = startBlockingQuery<DiscoveryChainResponse>(
      consul,
      { path: `/discovery-chain/${encodeURIComponent(options.service)}`, query: options.dc ? { dc: options.dc } : {} },
      ({ body, reset }) => {
        const latest = () => this.#apply(body);
        if (reset && this.current && !this.#holding) {
          const timer = setTimeout(() => {
            const last = this.#holding!.latest;
            this.#holding = undefined;
            last();
          }, resetGraceMs);
          timer.unref();
          this.#holding = { timer, latest };
          return;
        }
        if (this.#holding) {
          this.#holding.latest = latest;
          return;
        }
        latest();
      },
      {
        waitSeconds: options.waitSeconds,
        minQueryIntervalMs: options.minQueryIntervalMs,
        maxRetryDelayMs: options.maxRetryDelayMs,
        onError: (error) => {
          // Before any chain, a failure is news: the transport falls back to the service itself.
          if (this.current || this.failing) return;
          this.failing = error;
          for (const listener of this.#listeners) listener({ kind: "unavailable", error });
        },
      },
    );
  }

  handle(): ChainWatch {
    this.#handles++;
    let closed = false;
    const current = () => this.current;
    const failing = () => this.failing;
    const lastError = () => this.#query.lastError;
    return {
      get current() {
        return current();
      },
      get failing() {
        return failing();
      },
      subscribe: (listener) => {
        this.#listeners.add(listener);
        return () => this.#listeners.delete(listener);
      },
      stalenessMs: () => this.#query.stalenessMs(),
      get lastError() {
        return lastError();
      },
      close: () => {
        if (closed) return;
        closed = true;
        if (--this.#handles === 0) this.#close();
      },
    };
  }

  #apply(body: DiscoveryChainResponse): void {
    const chain = body?.Chain;
    if (!chain || typeof chain !== "object") return;
    const text = JSON.stringify(chain);
    this.failing = undefined;
    if (text === this.current?.text) return;
    this.current = { chain, text };
    for (const listener of this.#listeners) listener({ kind: "chain", chain, text });
  }

  #close(): void {
    if (this.#holding) clearTimeout(this.#holding.timer);
    this.#query.close();
    this.#listeners.clear();
    this.onStopped();
  }
}
