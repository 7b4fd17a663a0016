import assert from "node:assert/strict";
import { compileIntentions, type CallAttributes, type ConsulIntention, type ConsulIntentionPermission, type Decision } from "../../src/platform/mesh/intentions.js";
import { re2FullMatch } from "../../src/platform/mesh/re2-regex.js";

/**
 * intention builds what Consul's match endpoint answers for destination "api" (or "*"), with the
 * precedence Consul computes (computeIntentionPrecedence): 9 / 8 for an exact destination and an
 * exact / `*` source, 6 / 5 for a `*` destination.
 */
function intention(source: string, rule: "allow" | "deny" | "" | ConsulIntentionPermission[], extra: Partial<ConsulIntention> = {}): ConsulIntention {
  const destination = extra.DestinationName ?? "api";
  const precedence = (destination === "*" ? 6 : 9) - (source === "*" ? 1 : 0);
  const l7 = Array.isArray(rule);
  return { ID: "", SourceName: source, SourceNS: "default", SourceType: "consul", DestinationName: destination, DestinationNS: "default", Action: l7 ? "" : rule, Permissions: l7 ? rule : undefined, Precedence: precedence, ...extra };
}

function call(source: string, path = "/pkg.Api/Get", options: { method?: string; headers?: Record<string, string>; namespace?: string } = {}): CallAttributes {
  const headers = options.headers ?? {};
  return { source, sourceNamespace: options.namespace, path, method: options.method ?? "POST", header: (name) => headers[name] };
}

const allowed: Decision = { allowed: true };
const denied = (reason: "intention" | "l7_no_match" | "default" | "invalid_rule"): Decision => ({ allowed: false, reason });
const defaultDeny = { defaultAllow: false };
const defaultAllow = { defaultAllow: true };

describe("compileIntentions: L4 and precedence", () => {
  it("uses the default when no intention names the caller: allow, or deny with reason default", () => {
    assert.deepEqual(compileIntentions([], defaultAllow).decide(call("web")), allowed);
    assert.deepEqual(compileIntentions([], defaultDeny).decide(call("web")), denied("default"));
    const policy = compileIntentions([intention("web", "allow")], defaultDeny);
    assert.deepEqual(policy.decide(call("web")), allowed);
    assert.deepEqual(policy.decide(call("cron")), denied("default"));
  });

  it("allows and denies on L4 intentions, whatever the default", () => {
    for (const options of [defaultAllow, defaultDeny]) {
      const policy = compileIntentions([intention("web", "allow"), intention("cron", "deny")], options);
      assert.deepEqual(policy.decide(call("web")), allowed, `default ${options.defaultAllow}`);
      assert.deepEqual(policy.decide(call("cron")), denied("intention"), `default ${options.defaultAllow}`);
    }
  });

  it("lets an exact source beat `*`, both ways, whatever order the answer lists them in", () => {
    for (const options of [defaultAllow, defaultDeny]) {
      const webAllowed = compileIntentions([intention("*", "deny"), intention("web", "allow")], options);
      assert.deepEqual(webAllowed.decide(call("web")), allowed);
      assert.deepEqual(webAllowed.decide(call("cron")), denied("intention"));
      const webDenied = compileIntentions([intention("*", "allow"), intention("web", "deny")], options);
      assert.deepEqual(webDenied.decide(call("web")), denied("intention"));
      assert.deepEqual(webDenied.decide(call("cron")), allowed);
    }
  });

  it("keeps the first intention of a source: `web => api` wins over `web => *` (removeSameSourceIntentions)", () => {
    for (const [first, second, expected] of [["allow", "deny", allowed], ["deny", "allow", denied("intention")]] as const) {
      const policy = compileIntentions([intention("web", second, { DestinationName: "*" }), intention("web", first)], defaultDeny);
      assert.deepEqual(policy.decide(call("web")), expected);
    }
  });

  it("applies both `* => api` and a lower `web => *` to web, as Envoy's RBAC does (not the first only)", () => {
    // Precedence puts `* => api` (8) before `web => *` (6), but `*` never shadows the more specific
    // `web` in rbac.go removeSourcePrecedence, so both apply and the non-default answer wins.
    const ixns = [intention("*", "deny"), intention("web", "allow", { DestinationName: "*" })];
    assert.deepEqual(compileIntentions(ixns, defaultDeny).decide(call("web")), allowed);
    assert.deepEqual(compileIntentions(ixns, defaultAllow).decide(call("web")), denied("intention"));
    assert.deepEqual(compileIntentions(ixns, defaultDeny).decide(call("cron")), denied("intention"));
  });

  it("reads an empty Action, with no or empty Permissions, as an L4 deny", () => {
    for (const extra of [{ Permissions: [] }, { Permissions: null }, {}]) {
      const policy = compileIntentions([intention("web", "", extra), intention("*", "allow")], defaultAllow);
      assert.deepEqual(policy.decide(call("web")), denied("intention"));
      assert.deepEqual(policy.decide(call("cron")), allowed);
    }
  });

  it("ignores the Action of an intention that has Permissions (it is L7)", () => {
    const policy = compileIntentions([intention("web", [{ Action: "allow", HTTP: { PathExact: "/ok" } }], { Action: "allow" })], defaultDeny);
    assert.deepEqual(policy.decide(call("web", "/ok")), allowed);
    assert.deepEqual(policy.decide(call("web", "/other")), denied("l7_no_match"));
  });
});

describe("compileIntentions: namespaces, peers and partitions", () => {
  it("reads a missing or empty namespace as default, and matches SourceNS default, empty and `*`", () => {
    for (const SourceNS of ["default", "", undefined]) {
      const policy = compileIntentions([intention("web", "allow", { SourceNS })], defaultDeny);
      assert.deepEqual(policy.decide(call("web")), allowed, `SourceNS ${SourceNS}`);
      assert.deepEqual(policy.decide(call("web", "/p", { namespace: "default" })), allowed);
      assert.deepEqual(policy.decide(call("web", "/p", { namespace: "" })), allowed);
      assert.deepEqual(policy.decide(call("web", "/p", { namespace: "team" })), denied("default"));
    }
    const everyNamespace = compileIntentions([intention("*", "allow", { SourceNS: "*", Precedence: 7 })], defaultDeny);
    assert.deepEqual(everyNamespace.decide(call("web")), allowed);
    assert.deepEqual(everyNamespace.decide(call("web", "/p", { namespace: "team" })), allowed);
  });

  it("keeps `default/*` to the default namespace, where it shadows `*/*`, and `team/web` to team", () => {
    const policy = compileIntentions([intention("*", "deny", { SourceNS: "*", Precedence: 7 }), intention("*", "allow"), intention("web", "allow", { SourceNS: "team" })], defaultAllow);
    assert.deepEqual(policy.decide(call("cron")), allowed);
    assert.deepEqual(policy.decide(call("cron", "/p", { namespace: "team" })), denied("intention"));
    assert.deepEqual(policy.decide(call("web", "/p", { namespace: "team" })), allowed);
    assert.deepEqual(policy.decide(call("web", "/p", { namespace: "other" })), denied("intention"));
  });

  it("never matches a peer's or another partition's intention to a local caller", () => {
    const policy = compileIntentions([intention("web", "allow", { SourcePeer: "dc2" }), intention("cron", "allow", { SourcePartition: "other" }), intention("api", "allow", { SourcePartition: "default" })], defaultDeny);
    assert.deepEqual(policy.decide(call("web")), denied("default"));
    assert.deepEqual(policy.decide(call("cron")), denied("default"));
    assert.deepEqual(policy.decide(call("api")), allowed);
  });

  it("ignores, with a problem, an exact name under a `*` namespace", () => {
    const policy = compileIntentions([intention("web", "allow", { SourceNS: "*", ID: "ixn-1" })], defaultDeny);
    assert.deepEqual(policy.decide(call("web")), denied("default"));
    assert.equal(policy.problems.length, 1);
    assert.match(policy.problems[0]!, /ixn-1 \*\/web => default\/api/);
  });
});

describe("compileIntentions: L7 permissions", () => {
  const l7 = (permissions: ConsulIntentionPermission[], options = defaultDeny) => compileIntentions([intention("web", permissions)], options);

  it("matches PathExact, PathPrefix and PathRegex (whole path)", () => {
    const exact = l7([{ Action: "allow", HTTP: { PathExact: "/pkg.Api/Get" } }]);
    assert.deepEqual(exact.decide(call("web", "/pkg.Api/Get")), allowed);
    assert.deepEqual(exact.decide(call("web", "/pkg.Api/GetAll")), denied("l7_no_match"));
    const prefix = l7([{ Action: "allow", HTTP: { PathPrefix: "/pkg.Api/" } }]);
    assert.deepEqual(prefix.decide(call("web", "/pkg.Api/Put")), allowed);
    assert.deepEqual(prefix.decide(call("web", "/pkg.Other/Put")), denied("l7_no_match"));
    const regex = l7([{ Action: "allow", HTTP: { PathRegex: "/pkg\\.Api/(Get|List)" } }]);
    assert.deepEqual(regex.decide(call("web", "/pkg.Api/List")), allowed);
    assert.deepEqual(regex.decide(call("web", "/pkg.Api/ListAll")), denied("l7_no_match"), "a regex must match the whole path");
    assert.deepEqual(regex.decide(call("web", "/v2/pkg.Api/Get")), denied("l7_no_match"), "a regex must match from the start");
  });

  it("uses the first non-empty of PathExact, PathPrefix, PathRegex", () => {
    const policy = l7([{ Action: "allow", HTTP: { PathExact: "/a", PathPrefix: "/b" } }]);
    assert.deepEqual(policy.decide(call("web", "/a")), allowed);
    assert.deepEqual(policy.decide(call("web", "/b/c")), denied("l7_no_match"));
  });

  it("matches Methods exactly as Consul stores them (upper case)", () => {
    const policy = l7([{ Action: "allow", HTTP: { PathPrefix: "/", Methods: ["GET", "POST"] } }]);
    assert.deepEqual(policy.decide(call("web", "/a", { method: "POST" })), allowed);
    assert.deepEqual(policy.decide(call("web", "/a", { method: "GET" })), allowed);
    assert.deepEqual(policy.decide(call("web", "/a", { method: "PUT" })), denied("l7_no_match"));
    assert.deepEqual(policy.decide(call("web", "/a", { method: "post" })), denied("l7_no_match"));
  });

  it("matches headers: Present, Exact, Prefix, Suffix, Regex (whole value), names in any case", () => {
    const cases: [ConsulIntentionPermission["HTTP"], string | undefined, boolean][] = [
      [{ Header: [{ Name: "X-Tenant", Present: true }] }, "anything", true],
      [{ Header: [{ Name: "X-Tenant", Present: true }] }, undefined, false],
      [{ Header: [{ Name: "x-tenant", Exact: "acme" }] }, "acme", true],
      [{ Header: [{ Name: "x-tenant", Exact: "acme" }] }, "acme-2", false],
      [{ Header: [{ Name: "x-tenant", Prefix: "ac" }] }, "acme", true],
      [{ Header: [{ Name: "x-tenant", Prefix: "ac" }] }, "bac", false],
      [{ Header: [{ Name: "x-tenant", Suffix: "me" }] }, "acme", true],
      [{ Header: [{ Name: "x-tenant", Suffix: "me" }] }, "mea", false],
      [{ Header: [{ Name: "x-tenant", Regex: "a[a-z]+" }] }, "acme", true],
      [{ Header: [{ Name: "x-tenant", Regex: "a[a-z]+" }] }, "acme-2", false],
      [{ Header: [{ Name: "x-tenant", Regex: "a[a-z]+" }] }, undefined, false],
    ];
    for (const [http, value, expected] of cases) {
      const policy = l7([{ Action: "allow", HTTP: http }]);
      const headers: Record<string, string> = value === undefined ? {} : { "x-tenant": value };
      assert.deepEqual(policy.decide(call("web", "/a", { headers })), expected ? allowed : denied("l7_no_match"), `${JSON.stringify(http)} on ${value}`);
    }
  });

  it("inverts header matches, but an absent header matches only an inverted Present (Envoy's matchHeaders)", () => {
    const cases: [ConsulIntentionPermission["HTTP"], string | undefined, boolean][] = [
      [{ Header: [{ Name: "x-debug", Present: true, Invert: true }] }, undefined, true],
      [{ Header: [{ Name: "x-debug", Present: true, Invert: true }] }, "1", false],
      [{ Header: [{ Name: "x-debug", Exact: "1", Invert: true }] }, "0", true],
      [{ Header: [{ Name: "x-debug", Exact: "1", Invert: true }] }, "1", false],
      [{ Header: [{ Name: "x-debug", Exact: "1", Invert: true }] }, undefined, false],
      [{ Header: [{ Name: "x-debug", Prefix: "o", Invert: true }] }, "no", true],
      [{ Header: [{ Name: "x-debug", Suffix: "n", Invert: true }] }, "on", false],
      [{ Header: [{ Name: "x-debug", Regex: "[0-9]", Invert: true }] }, "12", true],
      [{ Header: [{ Name: "x-debug", Regex: "[0-9]", Invert: true }] }, undefined, false],
    ];
    for (const [http, value, expected] of cases) {
      const policy = l7([{ Action: "allow", HTTP: http }]);
      const headers: Record<string, string> = value === undefined ? {} : { "x-debug": value };
      assert.deepEqual(policy.decide(call("web", "/a", { headers })), expected ? allowed : denied("l7_no_match"), `${JSON.stringify(http)} on ${value}`);
    }
  });

  it("requires every part of a permission: path, methods and each header", () => {
    const policy = l7([{ Action: "allow", HTTP: { PathPrefix: "/pkg.Api/", Methods: ["POST"], Header: [{ Name: "x-a", Exact: "1" }, { Name: "x-b", Present: true }] } }]);
    const headers = { "x-a": "1", "x-b": "" };
    assert.deepEqual(policy.decide(call("web", "/pkg.Api/Get", { headers })), allowed);
    assert.deepEqual(policy.decide(call("web", "/pkg.Api/Get", { headers: { "x-a": "1" } })), denied("l7_no_match"));
    assert.deepEqual(policy.decide(call("web", "/pkg.Api/Get", { headers, method: "GET" })), denied("l7_no_match"));
    assert.deepEqual(policy.decide(call("web", "/pkg.Other/Get", { headers })), denied("l7_no_match"));
  });

  it("reads `:method` and `:path` header rules from the call", () => {
    const policy = l7([{ Action: "allow", HTTP: { Header: [{ Name: ":method", Exact: "POST" }, { Name: ":path", Prefix: "/pkg." }] } }]);
    assert.deepEqual(policy.decide(call("web", "/pkg.Api/Get")), allowed);
    assert.deepEqual(policy.decide(call("web", "/pkg.Api/Get", { method: "GET" })), denied("l7_no_match"));
  });

  it("lets the first matching permission decide, allow or deny", () => {
    const policy = l7([
      { Action: "deny", HTTP: { PathPrefix: "/pkg.Api/Admin" } },
      { Action: "allow", HTTP: { PathPrefix: "/pkg.Api/" } },
      { Action: "deny", HTTP: { PathPrefix: "/pkg.Api/Get" } },
    ]);
    assert.deepEqual(policy.decide(call("web", "/pkg.Api/AdminReset")), denied("intention"));
    assert.deepEqual(policy.decide(call("web", "/pkg.Api/Get")), allowed, "the later deny is never reached");
  });

  it("gives the default when no permission matches, and never the lower intentions", () => {
    const ixns = [intention("web", [{ Action: "allow", HTTP: { PathExact: "/a" } }]), intention("*", "deny")];
    const underDeny = compileIntentions(ixns, defaultDeny);
    assert.deepEqual(underDeny.decide(call("web", "/a")), allowed);
    assert.deepEqual(underDeny.decide(call("web", "/b")), denied("l7_no_match"));
    // Default allow: the `*` deny does not apply to web (rbac.go removeSourcePrecedence), so an
    // unmatched call from web is allowed by the default.
    const underAllow = compileIntentions(ixns, defaultAllow);
    assert.deepEqual(underAllow.decide(call("web", "/b")), allowed);
    assert.deepEqual(underAllow.decide(call("cron", "/a")), denied("intention"));
    const withAllowStar = compileIntentions([intention("web", [{ Action: "deny", HTTP: { PathExact: "/a" } }]), intention("*", "allow")], defaultDeny);
    assert.deepEqual(withAllowStar.decide(call("web", "/b")), denied("l7_no_match"), "the `*` allow does not apply to web either");
    assert.deepEqual(withAllowStar.decide(call("web", "/a")), denied("intention"));
  });

  it("reads a permission with an empty Action as deny, and says so", () => {
    const policy = l7([{ Action: "", HTTP: { PathExact: "/a" } }], defaultAllow);
    assert.deepEqual(policy.decide(call("web", "/a")), denied("intention"));
    assert.deepEqual(policy.decide(call("web", "/b")), allowed);
    assert.match(policy.problems.join("\n"), /Permissions\[0\]: Action "" is neither "allow" nor "deny"/);
  });

  it("matches every call with a permission that has no HTTP, and says so", () => {
    const policy = l7([{ Action: "allow" }]);
    assert.deepEqual(policy.decide(call("web", "/anything", { method: "DELETE" })), allowed);
    assert.match(policy.problems.join("\n"), /Permissions\[0\] has no HTTP/);
  });

  it("skips a header rule with no condition, as Consul does, and records it", () => {
    const policy = l7([{ Action: "allow", HTTP: { PathExact: "/a", Header: [{ Name: "x-a" }] } }]);
    assert.deepEqual(policy.decide(call("web", "/a")), allowed);
    assert.match(policy.problems.join("\n"), /Header\[0\] \(x-a\) sets none of/);
  });
});

describe("compileIntentions: regexes that do not compile", () => {
  it("denies with invalid_rule the calls a broken PathRegex would decide, keeps the rest, and names the intention", () => {
    const policy = compileIntentions(
      [
        intention("web", [
          { Action: "allow", HTTP: { PathExact: "/pkg.Api/Ping" } },
          { Action: "allow", HTTP: { PathRegex: "/pkg.Api/(Get", Methods: ["POST"] } },
          { Action: "allow", HTTP: { PathPrefix: "/pkg.Api/" } },
        ], { ID: "ixn-web" }),
        intention("cron", "allow"),
      ],
      defaultDeny,
    );
    assert.deepEqual(policy.decide(call("web", "/pkg.Api/Ping")), allowed, "an earlier permission still decides");
    assert.deepEqual(policy.decide(call("web", "/pkg.Api/Get")), denied("invalid_rule"));
    assert.deepEqual(policy.decide(call("web", "/pkg.Api/Get", { method: "GET" })), allowed, "the broken permission cannot match a GET, so the next one decides");
    assert.deepEqual(policy.decide(call("cron", "/pkg.Api/Get")), allowed, "other intentions stay in force");
    assert.equal(policy.problems.length, 1);
    assert.match(policy.problems[0]!, /ixn-web default\/web => default\/api Permissions\[1\]\.HTTP\.PathRegex "\/pkg\.Api\/\(Get" does not compile/);
  });

  it("denies with invalid_rule when a broken deny permission might match, even under default allow", () => {
    const policy = compileIntentions([intention("web", [{ Action: "deny", HTTP: { PathPrefix: "/pkg.Api/", Header: [{ Name: "x-user", Regex: "[a-z" }] } }])], defaultAllow);
    assert.deepEqual(policy.decide(call("web", "/pkg.Api/Get", { headers: { "x-user": "bob" } })), denied("invalid_rule"));
    assert.deepEqual(policy.decide(call("web", "/pkg.Api/Get")), allowed, "an absent header cannot match a Regex rule, so the rule decides nothing");
    assert.deepEqual(policy.decide(call("web", "/pkg.Other/Get", { headers: { "x-user": "bob" } })), allowed, "another part of the permission does not match");
    assert.match(policy.problems.join("\n"), /Header\[0\] \(x-user\) Regex "\[a-z" does not compile/);
  });

  it("refuses regexes RE2 refuses (lookaround, backreferences) even where JS accepts them", () => {
    const policy = compileIntentions([intention("web", [{ Action: "allow", HTTP: { PathRegex: "(?!/admin).*" } }])], defaultDeny);
    assert.deepEqual(policy.decide(call("web", "/pkg.Api/Get")), denied("invalid_rule"));
    assert.match(policy.problems.join("\n"), /lookaround/);
  });
});

describe("re2FullMatch", () => {
  const compiled = (pattern: string) => {
    const result = re2FullMatch(pattern);
    assert.ok(result.ok, `${pattern}: ${result.ok ? "" : result.error}`);
    return result.regex;
  };

  it("matches the whole value, alternation included", () => {
    const regex = compiled("GET|POST");
    assert.equal(regex.test("POST"), true);
    assert.equal(regex.test("POSTS"), false);
    assert.equal(regex.test("XGET"), false);
  });

  it("translates RE2's quoted punctuation and \\A \\z", () => {
    assert.equal(compiled("/a\\-b\\#c").test("/a-b#c"), true);
    assert.equal(compiled("[a\\-]+").test("a-a"), true);
    assert.equal(compiled("\\A/x\\z").test("/x"), true);
  });

  it("refuses what RE2 or Unicode-mode JS refuses, with the reason", () => {
    for (const [pattern, reason] of [["a(?=b)", /lookaround/], ["(?<!a)b", /lookaround/], ["(a)\\1", /backreference/], ["(?<n>a)\\k<n>", /backreference/], ["(?i)abc", /Invalid/], ["[[:alpha:]]", /./], ["a)|(b", /./], ["x\\", /trailing/]] as const) {
      const result = re2FullMatch(pattern);
      assert.equal(result.ok, false, pattern);
      if (!result.ok) assert.match(result.error, reason, pattern);
    }
  });
});
