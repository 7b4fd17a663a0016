import { re2FullMatch } from "./re2-regex.js";

/** The path fields of a Consul HTTP match: a service-router route's `Match.HTTP`, an L7 intention permission's `HTTP`. */
export interface PathFields {
  PathExact?: string;
  PathPrefix?: string;
  PathRegex?: string;
}

/**
 * PathCondition is the path part of a Consul HTTP match as Consul writes it to Envoy: the first
 * of PathExact, PathPrefix, PathRegex that is set, in that order; "any" when none is.
 * Service-router routes and intentions' L7 permissions share it (as they share header-condition.ts).
 */
export interface PathCondition {
  readonly kind: "any" | "exact" | "prefix" | "regex";
  /** The field's value as written ("" for "any"). */
  readonly value: string;
  /** PathRegex compiled as Envoy's `safe_regex` matches (RE2, the whole path); undefined when it does not compile. */
  readonly regex: RegExp | undefined;
}

/**
 * compilePathCondition reads the path part of `http`. A PathRegex that does not compile gives
 * a condition whose matches are unknown, and `regexError` says why: each caller decides what
 * that means (a route is skipped, a permission's calls are denied).
 */
export function compilePathCondition(http: PathFields): { condition: PathCondition; regexError: string | undefined } {
  if (http.PathExact) return { condition: { kind: "exact", value: http.PathExact, regex: undefined }, regexError: undefined };
  if (http.PathPrefix) return { condition: { kind: "prefix", value: http.PathPrefix, regex: undefined }, regexError: undefined };
  if (http.PathRegex) {
    const compiled = re2FullMatch(http.PathRegex);
    return { condition: { kind: "regex", value: http.PathRegex, regex: compiled.ok ? compiled.regex : undefined }, regexError: compiled.ok ? undefined : compiled.error };
  }
  return { condition: anyPath, regexError: undefined };
}

/** The condition of a match without a path part: every path. */
export const anyPath: PathCondition = { kind: "any", value: "", regex: undefined };

/** Whether `path` (`/<package>.<Service>/<Method>`) satisfies `condition`; undefined for a regex that did not compile. */
export function pathMatches(condition: PathCondition, path: string): boolean | undefined {
  switch (condition.kind) {
    case "any":
      return true;
    case "exact":
      return path === condition.value;
    case "prefix":
      return path.startsWith(condition.value);
    case "regex":
      return condition.regex?.test(path);
  }
}
