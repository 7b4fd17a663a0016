import { headerValueMatches, type HeaderKind } from "../../platform/mesh/header-condition.js";
import { re2FullMatch } from "../../platform/mesh/re2-regex.js";
import { anyPath, compilePathCondition, pathMatches, type PathCondition } from "../../platform/mesh/path-condition.js";
import type { ServiceRouteHTTPMatch, ServiceRouteHTTPMatchHeader } from "./chain.js";
import { readHeader, type HeaderInit } from "./headers.js";
import type { Problem } from "./problems.js";

/** One compiled header condition of a route. */
interface HeaderRule {
  /** Lower case: gRPC metadata keys are, and Envoy matches header names case-insensitively. */
  readonly name: string;
  readonly kind: HeaderKind;
  readonly value: string;
  readonly regex: RegExp | undefined;
  readonly invert: boolean;
}

/** RouteMatcher is one route's match, compiled: the path part, its header conditions, its methods. */
export interface RouteMatcher {
  readonly path: PathCondition;
  readonly headers: readonly HeaderRule[];
  /** False when the route can never match a gRPC call (Methods without POST, or a QueryParam condition). */
  readonly possible: boolean;
}

/**
 * compileRouteMatch compiles a service-router route's `Match.HTTP` as Consul 1.14.8 hands it to
 * Envoy (agent/xds/routes.go, makeRouteMatchForDiscoveryRoute), against a gRPC call whose path is
 * `/<package>.<Service>/<Method>` and whose headers are its request metadata:
 * - no match, or an empty one: every call (`prefix "/"`);
 * - the path: the first of PathExact, PathPrefix, PathRegex that is set, in that order;
 * - each header: the first of Exact, Regex, Prefix, Suffix, Present that is set (Consul's switch
 *   order), a header with none skipped as Consul skips it; `Invert` inverts it. An absent header
 *   matches only an inverted Present (Envoy's HeaderUtility::matchHeaders). `:path` and
 *   `:method` read the call's path and "POST";
 * - Methods: a gRPC call is always POST, so a route naming methods without POST never matches;
 * - QueryParam: a gRPC request has no query string, so such a route never matches (as in Envoy);
 *   reported, since it is surely not what was meant.
 * Regexes are RE2 matched whole (`re2FullMatch`, as Envoy's `safe_regex`). A regex that does
 * not compile makes the whole route unusable: it is reported and undefined is returned, so the
 * route is skipped rather than guessed at.
 */
export function compileRouteMatch(http: ServiceRouteHTTPMatch | undefined | null, where: string, problems: Problem[]): RouteMatcher | undefined {
  if (!http) return { path: anyPath, headers: [], possible: true };
  const { condition: path, regexError } = compilePathCondition(http);
  if (regexError !== undefined) {
    problems.push({ kind: "invalid_regex", message: `${where}.PathRegex ${JSON.stringify(http.PathRegex)} does not compile (${regexError}): the route is skipped` });
    return undefined;
  }
  const headers: HeaderRule[] = [];
  for (const [index, header] of (http.Header ?? []).entries()) {
    const rule = compileHeader(header, `${where}.Header[${index}]`, problems);
    if (rule === "invalid") return undefined;
    if (rule !== undefined) headers.push(rule);
  }
  let possible = true;
  if (http.Methods && http.Methods.length > 0 && !http.Methods.includes("POST")) possible = false;
  if (http.QueryParam && http.QueryParam.length > 0) {
    problems.push({ kind: "unsupported_field", message: `${where}.QueryParam: a gRPC request has no query string, so this route never matches (as in Envoy)` });
    possible = false;
  }
  return { path, headers, possible };
}

function compileHeader(header: ServiceRouteHTTPMatchHeader, where: string, problems: Problem[]): HeaderRule | "invalid" | undefined {
  const name = (header.Name ?? "").toLowerCase();
  const invert = header.Invert === true;
  if (header.Exact) return { name, kind: "exact", value: header.Exact, regex: undefined, invert };
  if (header.Regex) {
    const compiled = re2FullMatch(header.Regex);
    if (!compiled.ok) {
      problems.push({ kind: "invalid_regex", message: `${where} (${header.Name}) Regex ${JSON.stringify(header.Regex)} does not compile (${compiled.error}): the route is skipped` });
      return "invalid";
    }
    return { name, kind: "regex", value: header.Regex, regex: compiled.regex, invert };
  }
  if (header.Prefix) return { name, kind: "prefix", value: header.Prefix, regex: undefined, invert };
  if (header.Suffix) return { name, kind: "suffix", value: header.Suffix, regex: undefined, invert };
  if (header.Present) return { name, kind: "present", value: "", regex: undefined, invert };
  return undefined; // Consul skips it too ("this impossible situation")
}

/** Whether `path` (`/<package>.<Service>/<Method>`) satisfies the route's path part (a route whose regex did not compile is skipped when compiled). */
export function matchesPath(matcher: RouteMatcher, path: string): boolean {
  return pathMatches(matcher.path, path) === true;
}

/** Whether the call's headers satisfy every header condition of the route. */
export function matchesHeaders(matcher: RouteMatcher, path: string, header: HeaderInit | undefined): boolean {
  const rules = matcher.headers;
  for (let i = 0; i < rules.length; i++) {
    const rule = rules[i]!;
    const value = rule.name === ":path" ? path : rule.name === ":method" ? "POST" : readHeader(header, rule.name);
    if (value === undefined) {
      if (rule.kind === "present" && rule.invert) continue;
      return false;
    }
    // A route whose regex did not compile is skipped when compiled: `regex` is always set here.
    const matched = headerValueMatches(rule.kind, rule.value, rule.regex, value) === true;
    if (matched === rule.invert) return false;
  }
  return true;
}
