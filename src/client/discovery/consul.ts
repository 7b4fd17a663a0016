import { setTimeout as sleep } from "node:timers/promises";
import type { ConsulClient } from "../../platform/consul.js";
import { nextIndex } from "../../platform/consul-blocking.js";
import { backoffDelay } from "../retry/backoff.js";
import { HealthAnswerParser } from "./health-answer.js";
import { AnswerBuffers, healthQuery } from "./health-query.js";
import type { Instance } from "./instance.js";
import type { Resolver } from "./resolver.js";

/** ConsulResolverOptions select the instances of one service. */
export interface ConsulResolverOptions {
  /** Consul service name. */
  service: string;
  /** Only instances carrying every one of these tags. */
  tags?: string[];
  /** Only instances whose service meta has these exact values. */
  meta?: Record<string, string>;
  /** An extra Consul filter expression (https://developer.hashicorp.com/consul/api-docs/features/filtering). */
  filter?: string;
  /** Datacenter; default the agent's own. */
  dc?: string;
  /**
   * Sort instances by round-trip time from this node (`_agent`: the agent answering). Default:
   * Consul's own order. Balancers do not read the order; it matters to a pick-first client.
   */
  near?: string;
  /** Longest a blocking query waits for a change, in seconds. Default 30. */
  waitSeconds?: number;
  /**
   * Least time between two queries, in ms. Default 100. Consul answers a blocking query early on
   * unrelated churn, and without this floor a busy catalog turns the watch into a busy loop.
   */
  minQueryIntervalMs?: number;
  /** Longest wait between retries while Consul is unreachable, in ms. Default 10 000. */
  maxRetryDelayMs?: number;
  /**
   * After the agent lost its state (its index went backwards: a restart without data), an empty
   * answer is not believed for this long, in ms, while the instances register again; the last
   * known set keeps serving. Default 15 000. Outside that window an empty answer is passed on.
   */
  resetGraceMs?: number;
  /**
   * Discover through Consul's mesh view (`/v1/health/connect/<service>`): instances that speak the
   * mesh natively and the sidecar proxies that front the others, at the address a mesh client
   * dials. Default false (`/v1/health/service/<service>`).
   */
  connect?: boolean;
  /**
   * Ask through the agent's cache (`?cached`): the agent keeps one blocking query per selection to
   * the servers and answers every watcher from it. Default false. On a client agent this takes
   * load off the servers; on a server agent it adds a hop (see docs/benchmarks.md, bench-discovery).
   */
  cached?: boolean;
}

/**
 * consulResolver resolves `options.service` from Consul's health API, passing instances only,
 * kept current by blocking queries (index + wait). Every client asking for the same selection
 * with the same options of the same Consul client shares one watch; it stops when the last of
 * them closes.
 *
 * While Consul is unreachable the last known set is kept and served, and the watch retries with
 * jittered exponential backoff (100 ms to `maxRetryDelayMs`), recovering on its own. An honest
 * empty answer (no instance passes) is passed on as it is, so calls fail fast.
 */
export function consulResolver(consul: ConsulClient, options: ConsulResolverOptions): Resolver {
  let watches = sharedWatches.get(consul);
  if (!watches) sharedWatches.set(consul, (watches = new Map()));
  // Callers share a watch only when they ask for the same selection with the same timing:
  // otherwise the first caller's wait, query floor, retry ceiling and reset grace would silently
  // apply to all.
  const key = JSON.stringify([
    options.service,
    [...(options.tags ?? [])].sort(),
    options.meta ?? {},
    options.filter ?? "",
    options.dc ?? "",
    options.near ?? "",
    options.waitSeconds ?? 30,
    options.minQueryIntervalMs ?? 100,
    options.maxRetryDelayMs ?? 10_000,
    options.resetGraceMs ?? 15_000,
    options.connect ?? false,
    options.cached ?? false,
  ]);
  let watch = watches.get(key);
  if (!watch) {
    watch = new ConsulWatch(consul, options, () => watches.delete(key));
    watches.set(key, watch);
  }
  return watch.handle();
}

/** One client's handle on a shared watch. */
class ConsulResolverHandle implements Resolver {
  #closed = false;
  constructor(private readonly watch: ConsulWatch) {}
  get instances() {
    return this.watch.instances;
  }
  get resolved() {
    return this.watch.resolved;
  }
  get lastError() {
    return this.watch.lastError;
  }
  whenResolved(signal?: AbortSignal) {
    return this.watch.whenResolved(signal);
  }
  subscribe(listener: (instances: readonly Instance[]) => void) {
    return this.watch.subscribe(listener);
  }
  stalenessMs() {
    return this.watch.stalenessMs();
  }
  close() {
    if (this.#closed) return;
    this.#closed = true;
    this.watch.release();
  }
}

const emptyAnswer = Buffer.from("[]");

const sharedWatches = new WeakMap<ConsulClient, Map<string, ConsulWatch>>();

class ConsulWatch {
  instances: readonly Instance[] = [];
  resolved = false;
  lastError: Error | undefined;
  #lastAnswerAt = -Infinity;
  #holdingUntil = 0;
  #parser = new HealthAnswerParser();
  /** An answer was not passed on (an empty one, on hold after the agent's state was reset). */
  #heldBack = false;
  #handles = 0;
  #listeners = new Set<(instances: readonly Instance[]) => void>();
  #firstAnswer = Promise.withResolvers<void>();
  #stop = new AbortController();

  constructor(
    private readonly consul: ConsulClient,
    private readonly options: ConsulResolverOptions,
    private readonly onStopped: () => void,
  ) {
    void this.#run();
  }

  handle(): Resolver {
    this.#handles++;
    return new ConsulResolverHandle(this);
  }

  subscribe(listener: (instances: readonly Instance[]) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  stalenessMs(): number {
    return performance.now() - this.#lastAnswerAt;
  }

  release(): void {
    if (--this.#handles === 0) this.#close();
  }

  whenResolved(signal?: AbortSignal): Promise<void> {
    if (this.resolved) return Promise.resolve();
    if (!signal) return this.#firstAnswer.promise;
    signal.throwIfAborted();
    return new Promise((resolve, reject) => {
      const onAbort = () => reject(signal.reason);
      signal.addEventListener("abort", onAbort, { once: true });
      void this.#firstAnswer.promise.then(() => {
        signal.removeEventListener("abort", onAbort);
        resolve();
      });
    });
  }

  #close(): void {
    this.#stop.abort();
    this.#listeners.clear();
    this.onStopped();
  }

  async #run(): Promise<void> {
    const { service, tags, dc, near, waitSeconds = 30, minQueryIntervalMs = 100, maxRetryDelayMs = 10_000 } = this.options;
    const filter = consulFilter(this.options);
    const waitMs = waitSeconds * 1000;
    // Consul adds up to wait/16 of jitter to a blocking query; the HTTP timeout allows for it
    // plus a margin, so a silent network loss is noticed one wait later at the most.
    const httpTimeoutMs = waitMs + waitMs / 16 + 2000;
    const buffers = new AnswerBuffers();
    const query = healthQuery(this.consul, this.options.connect ? "connect" : "service", buffers);
    let index = 0n;
    let highestIndex = 0n;
    let failures = 0;
    const resetGraceMs = this.options.resetGraceMs ?? 15_000;
    try {
      while (!this.#stop.signal.aborted) {
        const startedAt = performance.now();
        try {
          const [response, body] = await query.ask({
            service,
            passing: true,
            ...(tags?.length ? { tag: tags } : {}),
            ...(filter ? { filter } : {}),
            ...(dc ? { dc } : {}),
            ...(near ? { near } : {}),
            ...(this.options.cached ? { cached: true } : {}),
            index: index.toString(),
            // While an empty answer is on hold, ask again soon rather than block for a full wait.
            wait: this.#holdingUntil > performance.now() ? "1s" : `${waitSeconds}s`,
            timeout: httpTimeoutMs,
            signal: this.#stop.signal,
          });
          const instances = this.#parser.parse(body.length > 0 ? body : emptyAnswer);
          // Parsed, the answer is the one the parser compares the next with: the next is received
          // into the other buffer. (Not before: a parse that failed leaves the parser the last one.)
          buffers.handOver();
          failures = 0;
          this.#lastAnswerAt = performance.now();
          // Under a default-deny ACL policy Consul answers an unauthorised query with an empty
          // list, not an error: say so, or "no passing instance" would hide the likely cause.
          const aclsMayHide =
            instances.length === 0 &&
            (response.headers["x-consul-results-filtered-by-acls"] === "true" || response.headers["x-consul-default-acl-policy"] === "deny");
          this.lastError = aclsMayHide
            ? new Error(`Consul's ACLs deny by default, so they may hide instances of "${service}" from this token (set CONSUL_HTTP_TOKEN to one that may read the service)`)
            : undefined;
          const reported = nextIndex(0n, response.headers["x-consul-index"]);
          // An index below one seen before: the agent's state was reset (restarted without data).
          if (reported > 0n && reported < highestIndex) this.#holdingUntil = performance.now() + resetGraceMs;
          highestIndex = reported;
          index = nextIndex(index, response.headers["x-consul-index"]);
          this.#publish(instances);
        } catch (error) {
          if (this.#stop.signal.aborted) return;
          failures++;
          this.lastError = error instanceof Error ? error : new Error(String(error));
          index = 0n; // the agent may have restarted with a fresh index
          const delay = Math.max(100, backoffDelay(failures, { baseMs: 200, maxMs: maxRetryDelayMs }));
          await sleep(delay, undefined, { signal: this.#stop.signal }).catch(() => undefined);
          continue;
        }
        const elapsed = performance.now() - startedAt;
        if (elapsed < minQueryIntervalMs) {
          await sleep(minQueryIntervalMs - elapsed, undefined, { signal: this.#stop.signal }).catch(() => undefined);
        }
      }
    } finally {
      query.close();
    }
  }

  #publish(instances: Instance[]): void {
    if (instances.length === 0 && this.instances.length > 0 && this.#holdingUntil > performance.now()) {
      this.#heldBack = true;
      return;
    }
    this.#holdingUntil = 0;
    const first = !this.resolved;
    this.resolved = true;
    // Consul wakes blocking queries on changes elsewhere too (and a check's output changes an
    // entry, not its instance): an unchanged set is not news. The parser knows, having handed
    // back the same object for each unchanged instance. After an answer held back, the parser
    // compares with that answer, not with the set served: pass the set on, even if unchanged.
    if (this.#parser.changed || first || this.#heldBack) {
      this.#heldBack = false;
      this.instances = instances;
      for (const listener of this.#listeners) listener(instances);
    }
    if (first) this.#firstAnswer.resolve();
  }
}

function consulFilter(options: ConsulResolverOptions): string | undefined {
  const clauses = Object.entries(options.meta ?? {}).map(([name, value]) => `Service.Meta[${JSON.stringify(name)}] == ${JSON.stringify(value)}`);
  if (options.filter) clauses.push(`(${options.filter})`);
  return clauses.length ? clauses.join(" and ") : undefined;
}
