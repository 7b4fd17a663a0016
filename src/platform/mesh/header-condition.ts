/**
 * HeaderKind is which field of a Consul header condition applies: Consul reads the first set of
 * Exact, Regex, Prefix, Suffix, Present, in that order, and writes it to Envoy as that one kind.
 * Intentions' L7 permissions and service-router routes share it.
 */
export type HeaderKind = "exact" | "regex" | "prefix" | "suffix" | "present";

/**
 * headerValueMatches tells whether a header's value (it is present) satisfies one condition
 * before `Invert` applies, as Envoy's HeaderUtility::matchHeaders does; undefined for a Regex
 * condition whose pattern did not compile (`regex` undefined), which each caller treats its own
 * way (an intention denies, a route is skipped). `regex` must match the whole value.
 */
export function headerValueMatches(kind: HeaderKind, expected: string, regex: RegExp | undefined, value: string): boolean | undefined {
  switch (kind) {
    case "exact":
      return value === expected;
    case "regex":
      return regex?.test(value);
    case "prefix":
      return value.startsWith(expected);
    case "suffix":
      return value.endsWith(expected);
    case "present":
      return true;
  }
}
