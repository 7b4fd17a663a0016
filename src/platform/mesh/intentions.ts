/**
 * Consul service-mesh intentions, decided locally for every incoming call, L4 and L7, with the
 * semantics of the Envoy RBAC filter Consul 1.14.8 configures for a sidecar. Every rule below was
 * read from Consul v1.14.8's source (the Go module github.com/hashicorp/consul@v1.14.8):
 *
 * 1. Input. The host watches `/v1/connect/intentions/match?by=destination&name=<service>`, the
 *    same query a sidecar's proxy configuration watches (agent/proxycfg-glue/intentions.go,
 *    cacheIntentions.Notify). It holds the intentions for the exact destination and for the
 *    wildcard ones (agent/consul/state/intention.go, intentionMatchGetParams).
 * 2. Order. Sorted again, as agent/xds/rbac.go intentionListToIntermediateRBACForm does, with
 *    agent/structs/intention.go IntentionPrecedenceSorter: Precedence descending, ties by
 *    (SourcePeer, SourcePartition, SourceNS, SourceName, DestinationPartition, DestinationNS,
 *    DestinationName). Precedence (agent/structs/config_entry_intentions.go
 *    computeIntentionPrecedence) is 9/8/7 for an exact destination with source exact / `ns/*` /
 *    `*` + `*`, 6/5/4 for `ns/*` destinations, 3/2/1 for `*` + `*`: every exact-destination
 *    intention outranks every wildcard-destination one.
 * 3. One intention per source. rbac.go removeSameSourceIntentions keeps only the first (highest
 *    precedence) intention for each source (peer, partition, namespace, name).
 * 4. Kind. rbac.go intentionToIntermediateRBACForm: an intention with Permissions is L7 (its
 *    Action is ignored); one without is L4, and allows only if Action is exactly "allow": an
 *    empty or unknown Action denies (intentionActionFromString).
 * 5. Which intentions apply to a source. rbac.go removeSourcePrecedence adds "AND NOT source(i)"
 *    to every lower intention j whose source covers i's more specific source (ixnSourceMatches,
 *    countWild: exact name 0, `ns/*` 1, `*` + `*` 2). So an intention applies to a caller when its
 *    source matches the caller and no higher-precedence intention with a more specific source
 *    also matches it. Within one destination that is "the first matching intention in
 *    precedence order". Across destinations it is not: `* => api` (precedence 8) does not
 *    shadow `web => *` (precedence 6), since `*` is the less specific source, so both apply to
 *    web. Consul's authorize endpoint (agent/connect_auth.go ConnectAuthorize) would take only
 *    the first; we follow the sidecar (see 7 for how two applicable intentions combine).
 * 6. L7. rbac.go removePermissionPrecedence adds "AND NOT perm(m)" for every earlier permission m
 *    to each permission, whatever m's action: the first permission matching the call decides,
 *    allow or deny. When no permission matches, the intention matches nothing in Envoy's policy
 *    and the call gets the default; lower-precedence intentions do not apply (the L7 intention's
 *    source was already removed from them in step 5). So with default allow an L7 intention that
 *    matches no permission ALLOWS the call, even under a `*` deny intention.
 * 7. Default and combination. rbac.go makeRBACRules: with default deny Envoy allows when some
 *    applicable intention allows (an allow-list); with default allow it denies when some
 *    applicable intention denies (a deny-list). Only the cross-destination case of step 5 has
 *    more than one applicable intention; there, the non-default answer wins.
 * 8. Sources. Callers are local: intentions with a SourcePeer (imported services, which Envoy
 *    recognises by the peer's trust domain) or a SourcePartition other than "" / "default" never
 *    match. SourceNS "" is "default"; "*" matches every namespace (and needs SourceName "*",
 *    agent/structs/config_entry_intentions.go validateIntentionWildcards). Consul OSS has only
 *    "default" (acl/enterprisemeta_oss.go).
 *
 * Matching one permission (path, headers, methods) is in l7-match.ts and the regex dialect in
 * re2-regex.ts. What Consul leaves to Envoy and we cannot copy: a regex that does not compile.
 * Envoy would refuse the whole listener update; here only the calls that rule would decide are
 * denied, with reason "invalid_rule", and the rest of the policy stays in force (see decide).
 */
import { compilePermission, matchPermission, type CompiledPermission, type ConsulIntentionPermission } from "./l7-match.js";

export type { ConsulHeaderPermission, ConsulHTTPPermission, ConsulIntentionPermission } from "./l7-match.js";

/**
 * ConsulIntention holds the fields of Consul 1.14's structs.Intention JSON (as the intention match
 * endpoint answers) that decide a call. Others (Description, Meta, CreatedAt, ...) may be present.
 * ID is "" for intentions written as service-intentions config entries.
 */
export interface ConsulIntention {
  ID?: string;
  SourceName: string;
  /** "default" in Consul OSS; "" is read as "default"; "*" matches every namespace. */
  SourceNS?: string;
  SourcePartition?: string;
  SourcePeer?: string;
  SourceType?: string;
  DestinationName: string;
  DestinationNS?: string;
  DestinationPartition?: string;
  /** "allow" or "deny"; Consul leaves it "" on an L7 intention. */
  Action?: string;
  Permissions?: readonly ConsulIntentionPermission[] | null;
  /** Consul's precedence, 1..9, higher first. */
  Precedence: number;
}

/** CallAttributes is what `decide` knows of one incoming call. */
export interface CallAttributes {
  /** The caller's service name, from its SPIFFE id (`.../svc/<name>`). */
  source: string;
  /** The caller's namespace from its SPIFFE id (`.../ns/<ns>/...`). Default "default". */
  sourceNamespace?: string;
  /** The request path; for gRPC "/pkg.Service/Method". */
  path: string;
  /** The HTTP method, "POST" for gRPC. */
  method: string;
  /**
   * A request header by lower-case name, undefined when absent. Several values of one header are
   * joined with "," (as Envoy's getAllOfHeaderAsString does). Pseudo-headers other than `:method`
   * and `:path` (`:authority`, `:scheme`) are asked for by their names.
   */
  header: (lowercaseName: string) => string | undefined;
}

/**
 * DenyReason says why a call was refused; it becomes a Prometheus label, so the set is small and
 * fixed, and spelled like our other reason labels (snake_case):
 * - "intention": an applicable intention denies (an L4 deny, or an L7 deny permission matched).
 * - "l7_no_match": the applicable L7 intention has no permission matching the call, and the
 *   default is deny.
 * - "default": no intention applies to the caller, and the default is deny.
 * - "invalid_rule": a permission whose regex did not compile might match the call.
 */
export type DenyReason = "intention" | "l7_no_match" | "default" | "invalid_rule";

/** Decision is the answer for one call. The objects are shared: never mutate them. */
export type Decision = { readonly allowed: true } | { readonly allowed: false; readonly reason: DenyReason };

/** IntentionPolicy decides calls for one Consul answer; compile a new one per answer. */
export interface IntentionPolicy {
  /** decide answers for one call, without allocating; a caller under L4 intentions costs one Map lookup. */
  decide(call: CallAttributes): Decision;
  /** Problems found while compiling (bad regexes, ignored intentions...), each naming the intention. */
  readonly problems: readonly string[];
}

/** IntentionPolicyOptions configures `compileIntentions`. */
export interface IntentionPolicyOptions {
  /**
   * What a call no intention decides gets. A sidecar takes it from the agent's
   * `acl.default_policy` ("allow" → true; agent/agent.go Agent.Start), which is "allow" unless
   * set, ACLs enabled or not.
   */
  defaultAllow: boolean;
}

const allow: Decision = Object.freeze({ allowed: true });
const denied = {
  intention: Object.freeze({ allowed: false, reason: "intention" }),
  l7_no_match: Object.freeze({ allowed: false, reason: "l7_no_match" }),
  default: Object.freeze({ allowed: false, reason: "default" }),
  invalid_rule: Object.freeze({ allowed: false, reason: "invalid_rule" }),
} as const satisfies Record<DenyReason, Decision>;

/** Source is one intention kept after steps 2-4 of the module comment. */
interface Source {
  readonly namespace: string;
  readonly name: string;
  /** countWild: 0 exact name, 1 `ns/*`, 2 `*` namespace and name. */
  readonly wild: number;
  /** L4 action, or the L7 permissions in order. */
  readonly rule: { readonly l4: boolean } | { readonly permissions: readonly CompiledPermission[] };
}

/** Verdict is what a caller gets: a fixed decision (L4 only) or an evaluation of L7 permissions. */
type Verdict = Decision | ((call: CallAttributes) => Decision);

interface NamespaceTable {
  readonly byName: Map<string, Verdict>;
  /** For callers no exact-name intention names. */
  readonly others: Verdict;
}

/**
 * compileIntentions compiles a Consul intention match answer (`answer[service]`) once, so that
 * `decide` costs a Map lookup for callers under L4 intentions. Semantics: the module comment.
 *
 * ```ts
 * const policy = compileIntentions(answer["orders"] ?? [], { defaultAllow: false });
 * const decision = policy.decide({ source: "web", path: "/pkg.Orders/Get", method: "POST", header: (n) => headers[n] });
 * ```
 */
export function compileIntentions(intentions: readonly ConsulIntention[], options: IntentionPolicyOptions): IntentionPolicy {
  const problems: string[] = [];
  const sources = keptSources(intentions, problems);
  const { defaultAllow } = options;

  const namespaces = new Map<string, NamespaceTable>();
  const namespaceNames = new Set(["default", ...sources.map((source) => source.namespace).filter((namespace) => namespace !== "*")]);
  for (const namespace of namespaceNames) {
    const byName = new Map<string, Verdict>();
    for (const source of sources) {
      if (source.namespace === namespace && source.wild === 0 && !byName.has(source.name)) byName.set(source.name, verdict(applicable(sources, namespace, source.name), defaultAllow));
    }
    namespaces.set(namespace, { byName, others: verdict(applicable(sources, namespace, undefined), defaultAllow) });
  }
  const otherNamespaces = verdict(applicable(sources, undefined, undefined), defaultAllow);
  const defaultNamespace = namespaces.get("default")!;

  return {
    problems,
    decide(call) {
      const namespace = call.sourceNamespace;
      const table = namespace === undefined || namespace === "" || namespace === "default" ? defaultNamespace : namespaces.get(namespace);
      const found = table === undefined ? otherNamespaces : (table.byName.get(call.source) ?? table.others);
      return typeof found === "function" ? found(call) : found;
    },
  };
}

/** keptSources applies steps 2-4 and 8 of the module comment: sorted, one per source, local. */
function keptSources(intentions: readonly ConsulIntention[], problems: string[]): Source[] {
  const sorted = [...intentions].sort(byPrecedence);
  const seen = new Set<string>();
  const kept: Source[] = [];
  for (const intention of sorted) {
    const namespace = intention.SourceNS || "default";
    const key = JSON.stringify([intention.SourcePeer ?? "", intention.SourcePartition || "default", namespace, intention.SourceName]);
    if (seen.has(key)) continue; // removeSameSourceIntentions
    seen.add(key);
    if (intention.SourcePeer) continue;
    if ((intention.SourcePartition || "default") !== "default") continue;
    const label = describe(intention);
    if (namespace === "*" && intention.SourceName !== "*") {
      problems.push(`${label}: an exact SourceName in every namespace is not a Consul source (validateIntentionWildcards); ignored`);
      continue;
    }
    const wild = namespace === "*" ? 2 : intention.SourceName === "*" ? 1 : 0;
    const permissions = intention.Permissions ?? [];
    const rule =
      permissions.length > 0
        ? { permissions: permissions.map((permission, index) => compilePermission(permission, `${label} Permissions[${index}]`, problems)) }
        : { l4: intention.Action === "allow" };
    kept.push({ namespace, name: intention.SourceName, wild, rule });
  }
  return kept;
}

/** byPrecedence is agent/structs/intention.go IntentionPrecedenceSorter.Less as a comparator. */
function byPrecedence(a: ConsulIntention, b: ConsulIntention): number {
  if (a.Precedence !== b.Precedence) return b.Precedence - a.Precedence;
  const tuple = (x: ConsulIntention) => [x.SourcePeer, x.SourcePartition, x.SourceNS, x.SourceName, x.DestinationPartition, x.DestinationNS, x.DestinationName];
  const [left, right] = [tuple(a), tuple(b)];
  for (let i = 0; i < left.length; i++) {
    const [l, r] = [left[i] ?? "", right[i] ?? ""];
    if (l !== r) return l < r ? -1 : 1;
  }
  return 0;
}

/**
 * applicable lists the intentions that apply to a caller (step 5): those whose source matches it
 * and that no earlier matching intention with a more specific source shadows. `namespace`
 * undefined is a namespace no intention names; `name` undefined is a name no exact intention
 * names.
 */
function applicable(sources: readonly Source[], namespace: string | undefined, name: string | undefined): Source[] {
  const out: Source[] = [];
  let mostSpecific = Infinity;
  for (const source of sources) {
    const matches = (source.namespace === "*" || source.namespace === namespace) && (source.name === "*" || source.name === name);
    if (!matches) continue;
    if (source.wild <= mostSpecific) out.push(source);
    mostSpecific = Math.min(mostSpecific, source.wild);
  }
  return out;
}

/**
 * verdict folds the applicable intentions into a fixed decision when all are L4, or into a
 * function evaluating the L7 permissions (step 6) and combining with the default (step 7).
 *
 * A permission whose regex did not compile answers "unknown" when its other parts match: the
 * call is then denied with "invalid_rule" if the evaluation reaches that permission (no earlier
 * permission matched), whatever the permission's action. That is stricter than needed when the
 * outcome would not depend on it (a deny permission under default deny, say), on purpose: a
 * broken rule never lets a call through and shows in the metrics until it is fixed.
 */
function verdict(applying: readonly Source[], defaultAllow: boolean): Verdict {
  let l4NonDefault = false;
  let l4Deny = false;
  const l7: (readonly CompiledPermission[])[] = [];
  for (const { rule } of applying) {
    if ("permissions" in rule) l7.push(rule.permissions);
    else {
      if (rule.l4 !== defaultAllow) l4NonDefault = true;
      if (!rule.l4) l4Deny = true;
    }
  }
  if (l7.length === 0) {
    if (defaultAllow) return l4NonDefault ? denied.intention : allow;
    return l4NonDefault ? allow : applying.length > 0 ? denied.intention : denied.default;
  }
  return (call) => {
    let nonDefault = l4NonDefault;
    let explicitDeny = l4Deny;
    for (let i = 0; i < l7.length; i++) {
      const outcome = firstMatch(l7[i]!, call);
      if (outcome === "invalid") return denied.invalid_rule;
      if (outcome === "none") continue;
      if ((outcome === "allow") !== defaultAllow) nonDefault = true;
      if (outcome === "deny") explicitDeny = true;
    }
    if (defaultAllow) return nonDefault ? denied.intention : allow;
    return nonDefault ? allow : explicitDeny ? denied.intention : denied.l7_no_match;
  };
}

/** firstMatch evaluates one L7 intention's permissions in order: the first that matches decides. */
function firstMatch(permissions: readonly CompiledPermission[], call: CallAttributes): "allow" | "deny" | "none" | "invalid" {
  for (let i = 0; i < permissions.length; i++) {
    const permission = permissions[i]!;
    const match = matchPermission(permission, call);
    if (match === "no") continue;
    if (match === "unknown") return "invalid";
    return permission.allow ? "allow" : "deny";
  }
  return "none";
}

/** describe names an intention in a problem: its ID when it has one, and source => destination. */
function describe(intention: ConsulIntention): string {
  const id = intention.ID ? ` ${intention.ID}` : "";
  return `intention${id} ${intention.SourceNS || "default"}/${intention.SourceName} => ${intention.DestinationNS || "default"}/${intention.DestinationName}`;
}
