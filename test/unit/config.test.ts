import assert from "node:assert/strict";
import { ConfigError, readEnv } from "../../src/platform/config.js";

describe("readEnv", () => {
  it("returns defaults for unset and blank variables", () => {
    const env = readEnv({ PORT: "  " });
    assert.equal(env.port("PORT", 8080), 8080);
    assert.deepEqual(env.hostPort("CONSUL_HTTP_ADDR", "127.0.0.1:8500"), { host: "127.0.0.1", port: 8500 });
    env.done();
  });

  it("parses host:port with or without a scheme, and IPv6 in brackets", () => {
    const env = readEnv({ A: "http://consul.local:8501", B: "[::1]:9000" });
    assert.deepEqual(env.hostPort("A", "x:1"), { host: "consul.local", port: 8501 });
    assert.deepEqual(env.hostPort("B", "x:1"), { host: "::1", port: 9000 });
    env.done();
  });

  it("collects every bad variable into one ConfigError that names them", () => {
    const env = readEnv({ PORT: "80a", CONSUL_HTTP_ADDR: "nohost", DRAIN_TIMEOUT_MS: "-5" });
    env.port("PORT", 0);
    env.hostPort("CONSUL_HTTP_ADDR", "127.0.0.1:8500");
    env.int("DRAIN_TIMEOUT_MS", 10_000, { min: 0 });
    assert.throws(
      () => env.done(),
      (error: unknown) =>
        error instanceof ConfigError &&
        error.problems.length === 3 &&
        /PORT="80a"/.test(error.message) &&
        /CONSUL_HTTP_ADDR="nohost"/.test(error.message) &&
        /DRAIN_TIMEOUT_MS="-5"/.test(error.message),
    );
  });

  it("rejects ports outside 0..65535", () => {
    const env = readEnv({ PORT: "70000" });
    assert.equal(env.port("PORT", 1), 1);
    assert.throws(() => env.done(), ConfigError);
  });

  it("splits comma lists and drops empty items", () => {
    assert.deepEqual(readEnv({ TAGS: "a, b,,c " }).list("TAGS", []), ["a", "b", "c"]);
  });
});

describe("parseStaticTokens", () => {
  it("reads name:token:scopes entries whose scopes contain colons", async () => {
    const { parseStaticTokens } = await import("../../src/server/interceptors/auth.js");
    assert.deepEqual(parseStaticTokens("ops:abc:svc.v1.S:write other:read, ro:xyz:"), [
      { name: "ops", token: "abc", scopes: ["svc.v1.S:write", "other:read"] },
      { name: "ro", token: "xyz", scopes: [] },
    ]);
    assert.throws(() => parseStaticTokens("nameonly"), /name:token:scopes/);
  });
});
