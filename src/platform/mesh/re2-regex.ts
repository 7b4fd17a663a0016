/** Re2FullMatch is a pattern compiled for whole-string matching, or why it could not be. */
export type Re2FullMatch = { ok: true; regex: RegExp } | { ok: false; error: string };

/** ASCII punctuation RE2 lets a backslash quote (`\-`, `\#`, ...), which Unicode-mode JS refuses. */
const asciiPunctuation = /^[!-/:-@[-`{-~]$/;
/** The punctuation Unicode-mode JS accepts after a backslash (outside a character class). */
const jsSyntaxCharacters = new Set("^$\\.*+?()[]{}|/");

/**
 * re2FullMatch compiles an intention's regex (`PathRegex`, a header's `Regex`) the way Envoy
 * runs it: Consul sends it as a `safe_regex` with the Google RE2 engine (agent/xds/response.go,
 * makeEnvoyRegexMatch) and Envoy calls `RE2::FullMatch`, so the pattern must match the whole
 * value. The JS RegExp is anchored as `^(?:pattern)$` with the `u` flag, after the pattern alone
 * compiled (so an unbalanced `)` cannot escape the group).
 *
 * Where JS and RE2 differ:
 * - Refused here though JS accepts them, because RE2 (so Envoy) refuses them: lookaround
 *   (`(?=`, `(?!`, `(?<=`, `(?<!`) and backreferences (`\1`, `\k<name>`).
 * - Refused by JS in Unicode mode though RE2 accepts them, so refused here: inline flags `(?i)`,
 *   `(?P<name>...)`, POSIX classes `[[:alpha:]]`, `\pL` without braces, `\Q...\E`, `\C`, a lone
 *   `{` or `]`. A refused pattern makes its rule deny (see l7-match.ts), never allow.
 * - Translated: RE2's quoted punctuation (`\-`, `\#`, `\:`) becomes `\xHH`; `\A` and `\z`
 *   (outside a class) become `^` and `$` (without the `m` flag both mean the ends of the text).
 * - Accepted with a different meaning: `\s` (RE2: `[\t\n\f\r ]`; JS adds `\v` and Unicode
 *   spaces), `.` (RE2 excludes only `\n`; JS also `\r`, U+2028, U+2029).
 * - Not checked: Envoy refuses regexes whose RE2 program is larger than its limit (100 by
 *   default); JS has no such limit. JS backtracks, so a pathological pattern (`(a+)+`) can take
 *   exponential time on a crafted header value where RE2 is linear: keep intention regexes
 *   simple.
 */
export function re2FullMatch(pattern: string): Re2FullMatch {
  let translated = "";
  let inClass = false;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === "\\") {
      const next = pattern[i + 1];
      if (next === undefined) return { ok: false, error: "trailing backslash" };
      i++;
      if (next >= "1" && next <= "9") return { ok: false, error: `backreference \\${next} (RE2 has none)` };
      if (next === "k") return { ok: false, error: "named backreference \\k (RE2 has none)" };
      if (!inClass && next === "A") translated += "^";
      else if (!inClass && next === "z") translated += "$";
      else if (asciiPunctuation.test(next) && !jsSyntaxCharacters.has(next)) translated += `\\x${next.charCodeAt(0).toString(16).padStart(2, "0")}`;
      else translated += c + next;
      continue;
    }
    if (inClass) {
      if (c === "]") inClass = false;
    } else if (c === "[") {
      inClass = true;
    } else if (c === "(" && /^\(\?(?:=|!|<=|<!)/.test(pattern.slice(i, i + 4))) {
      return { ok: false, error: "lookaround (RE2 has none)" };
    }
    translated += c;
  }
  try {
    new RegExp(translated, "u");
    return { ok: true, regex: new RegExp(`^(?:${translated})$`, "u") };
  } catch (error) {
    return { ok: false, error: (error as Error).message };
  }
}
