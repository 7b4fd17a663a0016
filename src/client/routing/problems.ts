/**
 * ProblemKind classifies what could not be applied of a discovery chain, as the `kind` label of
 * `meshkit_client_chain_problems_total` (a fixed set: bounded cardinality):
 * - `unknown_field`: a field this version does not know (a newer Consul's): ignored;
 * - `unsupported_field`: a field known but not applied by a client without a proxy (header
 *   rewriting, prefix rewrite, cookie hashing, ...): ignored, the rest applies;
 * - `invalid_regex`: a route's regex that does not compile: that route is skipped;
 * - `invalid_filter`: Consul refused a subset's filter when asked for its instances: that target
 *   has none (its calls fail naming it, or fail over);
 * - `unsupported_target`: a target meshkit cannot resolve (a cluster peer): it has no instances;
 * - `invalid_chain`: the chain cannot be used at all (no start node, a route or split leading
 *   nowhere): the previous chain keeps applying, or that part is skipped.
 */
export type ProblemKind = "unknown_field" | "unsupported_field" | "invalid_regex" | "invalid_filter" | "unsupported_target" | "invalid_chain";

/** Problem is one thing of a chain that could not be applied, and what was done instead. */
export interface Problem {
  kind: ProblemKind;
  message: string;
}
