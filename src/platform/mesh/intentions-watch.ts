import type { ConsulClient } from "../consul.js";
import { startBlockingQuery, type BlockingQuery, type BlockingQueryOptions } from "../consul-blocking.js";
import { compileIntentions, type ConsulIntention, type IntentionPolicy } from "./intentions.js";

/** IntentionsWatch holds the compiled intentions that apply to one destination service. */
export interface IntentionsWatch {
  /** The policy compiled from Consul's last answer; undefined until the first answer. */
  policy(): IntentionPolicy | undefined;
  /** Resolves once a policy is known. */
  ready(signal?: AbortSignal): Promise<IntentionPolicy>;
  /** Milliseconds since Consul last answered (Infinity before the first answer). */
  stalenessMs(): number;
  readonly lastError: Error | undefined;
  close(): void;
}

/** IntentionsWatchOptions: the destination, and what to do with rules that could not be compiled. */
export interface IntentionsWatchOptions extends BlockingQueryOptions {
  /** The destination service whose intentions apply. */
  service: string;
  /** Called with the problems of each new policy (a malformed regex, ...); they are denied, never allowed. */
  onProblems?: (problems: readonly string[]) => void;
  /** Called on every new policy (tests and metrics). */
  onPolicy?: (policy: IntentionPolicy) => void;
  /**
   * After the agent lost its state (its index went backwards: restarted without its data), its
   * answers are not believed for this long, in ms, while config entries are written again: the
   * last policy keeps applying, so a restarted empty agent does not open what intentions denied.
   * The answer then current applies when the time is up. Default 15 000.
   */
  resetGraceMs?: number;
}

/**
 * watchIntentions keeps the intentions that apply to `service` current, from
 * `GET /v1/connect/intentions/match?by=destination&name=<service>` as a blocking query: Consul
 * returns them already sorted by its precedence, and wakes the query when one changes (API, CLI,
 * UI or config entry), so a change applies here one round trip after Consul accepted it.
 * What applies without a matching intention is the agent's ACL default policy, which Consul
 * reports on every answer (`X-Consul-Default-ACL-Policy`: "allow" with ACLs off).
 * While Consul is out of reach the last policy keeps applying (fail static).
 */
export function watchIntentions(consul: ConsulClient, options: IntentionsWatchOptions): IntentionsWatch {
  let current: IntentionPolicy | undefined;
  let lastAnswer = "";
  let holding: { timer: NodeJS.Timeout; latest: () => void } | undefined;
  const resetGraceMs = options.resetGraceMs ?? 15_000;
  const first = Promise.withResolvers<IntentionPolicy>();
  const apply = (intentions: readonly ConsulIntention[], defaultAllow: boolean) => {
    // Consul wakes blocking queries on unrelated writes too: recompile only on news.
    const answer = JSON.stringify([defaultAllow, intentions]);
    if (answer === lastAnswer) return;
    lastAnswer = answer;
    const policy = compileIntentions(intentions, { defaultAllow });
    if (policy.problems.length > 0) options.onProblems?.(policy.problems);
    const isFirst = !current;
    current = policy;
    options.onPolicy?.(policy);
    if (isFirst) first.resolve(policy);
  };
  const query: BlockingQuery = startBlockingQuery<Record<string, ConsulIntention[] | null>>(
    consul,
    { path: "/connect/intentions/match", query: { by: "destination", name: options.service } },
    ({ body, headers, reset }) => {
      const defaultAllow = headers["x-consul-default-acl-policy"] !== "deny";
      const intentions = body[options.service] ?? [];
      const latest = () => apply(intentions, defaultAllow);
      if (reset && current && !holding) {
        const timer = setTimeout(() => {
          const last = holding!.latest;
          holding = undefined;
          last();
        }, resetGraceMs);
        timer.unref();
        holding = { timer, latest };
        return;
      }
      if (holding) {
        holding.latest = latest;
        return;
      }
      latest();
    },
    options,
  );
  return {
    policy: () => current,
    ready(signal) {
      if (current) return Promise.resolve(current);
      if (!signal) return first.promise;
      return Promise.race([first.promise, new Promise<never>((_, reject) => signal.addEventListener("abort", () => reject(signal.reason), { once: true }))]);
    },
    stalenessMs: () => query.stalenessMs(),
    get lastError() {
      return query.lastError;
    },
    close() {
      if (holding) clearTimeout(holding.timer);
      query.close();
    },
  };
}
