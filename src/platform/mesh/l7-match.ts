import type { CallAttributes } from "./intentions.js";
import { re2FullMatch } from "./re2-regex.js";
import { anyPath, compilePathCondition, pathMatches, type PathCondition } from "./path-condition.js";
import { headerValueMatches, type HeaderKind } from "./header-condition.js";

/** ConsulHeaderPermission is Consul's structs.IntentionHTTPHeaderPermission (one header rule). */
export interface ConsulHeaderPermission {
  Name: string;
  Present?: boolean;
  Exact?: string;
  Prefix?: string;
  Suffix?: string;
  Regex?: string;
  Invert?: boolean;
}

/** ConsulHTTPPermission is Consul's structs.IntentionHTTPPermission: every part given must match. */
export interface ConsulHTTPPermission {
  PathExact?: string;
  PathPrefix?: string;
  PathRegex?: string;
  Header?: readonly ConsulHeaderPermission[] | null;
  /** Upper case: Consul upper-cases them when the config entry is written (Normalize). */
  Methods?: readonly string[] | null;
}

/** ConsulIntentionPermission is Consul's structs.IntentionPermission. */
export interface ConsulIntentionPermission {
  Action: string;
  HTTP?: ConsulHTTPPermission | null;
}

/**
 * Match is a three-valued answer: a part whose regex did not compile cannot say whether it
 * matches, and a permission holding such a part is then "unknown" unless another part is "no".
 */
export type Match = "no" | "unknown" | "yes";

/** ValueFrom is where a header rule reads its value: `:method` and `:path` come from the call itself. */
export type ValueFrom = "header" | "method" | "path";

export type { HeaderKind } from "./header-condition.js";

/** HeaderRule is one compiled header condition of a permission. */
export interface HeaderRule {
  readonly name: string;
  readonly from: ValueFrom;
  readonly kind: HeaderKind;
  readonly value: string;
  /** Undefined for a Regex rule whose pattern did not compile. */
  readonly regex: RegExp | undefined;
  readonly invert: boolean;
}

/** CompiledPermission is one permission ready to match calls: its parts are ANDed. */
export interface CompiledPermission {
  readonly allow: boolean;
  /** A PathRegex that did not compile answers "unknown". */
  readonly path: PathCondition;
  readonly headers: readonly HeaderRule[];
  /** Undefined when the permission names no methods (any method). */
  readonly methods: readonly string[] | undefined;
}

/**
 * compilePermission turns one Consul permission into a matcher, following
 * agent/xds/rbac.go convertPermission (Consul 1.14.8):
 * - no `HTTP` at all: matches every call (`anyPermission`); an `HTTP` with no part also does.
 * - path: the first of PathExact, PathPrefix, PathRegex that is non-empty, in that order.
 * - each header: the first of Exact, Regex, Prefix, Suffix, Present that is set, in that order
 *   (Consul's switch order, not the field order); a header with none is skipped, as Consul
 *   does. Names are matched lower case (Envoy's header matcher lower-cases them).
 * - Methods: one `:method` regex `GET|POST` matched whole, so exact, case-sensitive membership.
 * - the action: "allow" allows, anything else denies (intentionActionFromString).
 * Problems (regexes that do not compile, parts Consul's validation would have refused) are
 * pushed to `problems`, each prefixed with `where`.
 */
export function compilePermission(permission: ConsulIntentionPermission, where: string, problems: string[]): CompiledPermission {
  const allow = permission.Action === "allow";
  if (permission.Action !== "allow" && permission.Action !== "deny") problems.push(`${where}: Action ${JSON.stringify(permission.Action)} is neither "allow" nor "deny"; treated as "deny" (as Consul does)`);
  const http = permission.HTTP;
  if (http === undefined || http === null) {
    problems.push(`${where} has no HTTP: it matches every call (as in Consul's rbac.go, though Consul's validation requires HTTP)`);
    return { allow, path: anyPath, headers: [], methods: undefined };
  }

  const { condition: path, regexError } = compilePathCondition(http);
  if (regexError !== undefined) problems.push(`${where}.HTTP.PathRegex ${JSON.stringify(http.PathRegex)} does not compile (${regexError}); calls it would decide are denied (invalid_rule)`);

  const headers: HeaderRule[] = [];
  for (const [index, header] of (http.Header ?? []).entries()) {
    const rule = compileHeader(header, `${where}.HTTP.Header[${index}]`, problems);
    if (rule !== undefined) headers.push(rule);
  }
  const methods = http.Methods && http.Methods.length > 0 ? [...http.Methods] : undefined;
  if (path.kind === "any" && headers.length === 0 && methods === undefined) problems.push(`${where}.HTTP has no path, header or method: it matches every call (as in Consul)`);
  return { allow, path, headers, methods };
}

/** compileHeader picks the one condition a header rule uses, in convertPermission's order. */
function compileHeader(header: ConsulHeaderPermission, where: string, problems: string[]): HeaderRule | undefined {
  const name = header.Name.toLowerCase();
  const from = name === ":method" ? "method" : name === ":path" ? "path" : "header";
  const invert = header.Invert === true;
  const rule = (kind: HeaderKind, value: string, regex?: RegExp): HeaderRule => ({ name, from, kind, value, regex, invert });
  if (header.Exact) return rule("exact", header.Exact);
  if (header.Regex) {
    const compiled = re2FullMatch(header.Regex);
    if (!compiled.ok) problems.push(`${where} (${header.Name}) Regex ${JSON.stringify(header.Regex)} does not compile (${compiled.error}); calls it would decide are denied (invalid_rule)`);
    return rule("regex", header.Regex, compiled.ok ? compiled.regex : undefined);
  }
  if (header.Prefix) return rule("prefix", header.Prefix);
  if (header.Suffix) return rule("suffix", header.Suffix);
  if (header.Present) return rule("present", "");
  problems.push(`${where} (${header.Name}) sets none of Present, Exact, Prefix, Suffix, Regex: skipped (as Consul does)`);
  return undefined;
}

/**
 * matchPermission is the hot path: every part must match. A part that says NO decides at once;
 * otherwise an "unknown" part (a regex that did not compile) makes the answer "unknown".
 */
export function matchPermission(permission: CompiledPermission, call: CallAttributes): Match {
  const onPath = pathMatches(permission.path, call.path);
  if (onPath === false) return "no";
  let answer: Match = onPath === undefined ? "unknown" : "yes";
  if (permission.methods !== undefined && !permission.methods.includes(call.method)) return "no";
  const headers = permission.headers;
  for (let i = 0; i < headers.length; i++) {
    const header = matchHeader(headers[i]!, call);
    if (header === "no") return "no";
    if (header === "unknown") answer = "unknown";
  }
  return answer;
}

/**
 * matchHeader follows Envoy's HeaderUtility::matchHeaders (source/common/http/header_utility.cc,
 * the 1.2x releases Consul 1.14 supports): an absent header never matches, inverted or not,
 * except a Present rule, whose inversion matches exactly when the header is absent.
 */
function matchHeader(rule: HeaderRule, call: CallAttributes): Match {
  const value = rule.from === "header" ? call.header(rule.name) : rule.from === "method" ? call.method : call.path;
  if (value === undefined) return rule.kind === "present" && rule.invert ? "yes" : "no";
  const matched = headerValueMatches(rule.kind, rule.value, rule.regex, value);
  if (matched === undefined) return "unknown";
  return matched !== rule.invert ? "yes" : "no";
}
