/** What a Connect transport receives as a call's request headers. */
export type HeaderInit = ConstructorParameters<typeof Headers>[0];

/**
 * readHeader reads one request header (`name` lower case) from whatever form the caller gave:
 * a `Headers`, a record or a list of pairs, without copying it into a `Headers` first (a call
 * routed on a header pays one lookup, not a construction). Several values of one name are
 * joined with ", ", as `Headers.get` joins them.
 */
export function readHeader(init: HeaderInit | undefined, name: string): string | undefined {
  if (init === undefined) return undefined;
  if (init instanceof Headers) return init.get(name) ?? undefined;
  if (Array.isArray(init)) {
    let found: string | undefined;
    for (const [key, value] of init as [string, string][]) {
      if (sameName(key, name)) found = found === undefined ? value : `${found}, ${value}`;
    }
    return found;
  }
  const record = init as Record<string, string>;
  const direct = record[name];
  if (direct !== undefined) return direct;
  for (const key in record) if (sameName(key, name)) return record[key];
  return undefined;
}

/**
 * Whether header name `key` is `lower` (lower case) but for ASCII case, without allocating (a
 * `toLowerCase()` per key and route made a miss cost a string each: the routing bench's GCs).
 */
function sameName(key: string, lower: string): boolean {
  if (key.length !== lower.length) return false;
  if (key === lower) return true;
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    if ((c >= 65 && c <= 90 ? c + 32 : c) !== lower.charCodeAt(i)) return false;
  }
  return true;
}
