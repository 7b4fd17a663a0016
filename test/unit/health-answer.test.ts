import assert from "node:assert/strict";
import { HealthAnswerParser } from "../../src/client/discovery/health-answer.js";

/** An entry as Consul's encoder writes it: compact, fields in struct order, Checks last. */
const entry = (id: string, options: { port?: number; status?: string; checkIndex?: number; meta?: Record<string, string>; proxyConfig?: unknown } = {}) => ({
  Node: { ID: "n1", Node: "node-1", Address: "10.0.0.1", Meta: { "consul-network-segment": "" }, CreateIndex: 5, ModifyIndex: 5 },
  Service: {
    ID: id,
    Service: "svc",
    Tags: ["v1"],
    Address: "",
    Meta: options.meta ?? { version: "1" },
    Port: options.port ?? 8080,
    Weights: { Passing: 1, Warning: 1 },
    Proxy: { Config: options.proxyConfig ?? {} },
  },
  Checks: [
    { Node: "node-1", CheckID: "serfHealth", Status: "passing", ModifyIndex: 5 },
    { Node: "node-1", CheckID: `service:${id}`, Status: options.status ?? "passing", Output: "ok", ModifyIndex: options.checkIndex ?? 7 },
  ],
});
const compact = (entries: unknown[]) => Buffer.from(`${JSON.stringify(entries)}\n`);
/** As a -dev agent writes it (Go's json.MarshalIndent, four spaces), with its trailing newline. */
const indented = (entries: unknown[]) => Buffer.from(`${JSON.stringify(entries, null, 4)}\n`);

describe("HealthAnswerParser", () => {
  it("makes instances as a whole parse would", () => {
    const instances = new HealthAnswerParser().parse(compact([entry("a"), entry("b", { port: 9090 })]));
    assert.deepEqual(new HealthAnswerParser().parse(indented([entry("a"), entry("b", { port: 9090 })])), instances);
    assert.deepEqual(instances, [
      { id: "a", address: "10.0.0.1", port: 8080, weight: 1, tags: ["v1"], meta: { version: "1" } },
      { id: "b", address: "10.0.0.1", port: 9090, weight: 1, tags: ["v1"], meta: { version: "1" } },
    ]);
    assert.deepEqual(new HealthAnswerParser().parse(Buffer.from("[]\n")), []);
  });

  for (const [form, answer] of [["compact", compact], ["indented", indented]] as const) {
    it(`hands back the same object for an unchanged instance, even when its entry's text changed (${form})`, () => {
      const parser = new HealthAnswerParser();
      const [a, b, c] = parser.parse(answer([entry("a"), entry("b"), entry("c")]));
      // b's check output moved on (a new index), c left, d joined, a is untouched.
      const next = parser.parse(answer([entry("a"), entry("b", { checkIndex: 9 }), entry("d")]));
      assert.equal(next[0], a);
      assert.equal(next[1], b);
      assert.notEqual(next[2], c);
      assert.equal(next[2]!.id, "d");
      // A changed instance is a new object with the new values.
      const moved = parser.parse(answer([entry("a", { port: 1 }), entry("b"), entry("d")]));
      assert.notEqual(moved[0], a);
      assert.equal(moved[0]!.port, 1);
      assert.equal(moved[2], next[2]);
      const remeta = parser.parse(answer([entry("a", { port: 1, meta: { version: "2" } }), entry("b"), entry("d")]));
      assert.notEqual(remeta[0], moved[0]);
      assert.deepEqual(remeta[0]!.meta, { version: "2" });
      // Another order (the streaming backend's answers are not sorted): the same objects.
      assert.deepEqual(parser.parse(answer([entry("d"), entry("b"), entry("a", { port: 1, meta: { version: "2" } })])), [remeta[2], remeta[1], remeta[0]]);
    });

    it(`parses only the entries that changed (${form})`, () => {
      const parser = new HealthAnswerParser();
      const entries = Array.from({ length: 50 }, (_, n) => entry(`i-${n}`));
      parser.parse(answer(entries));
      const parse = JSON.parse;
      let parsed = 0;
      JSON.parse = (text: string) => (parsed++, parse(text) as unknown);
      try {
        const next = parser.parse(answer(entries.map((e, n) => (n === 7 ? entry("i-7", { status: "warning", checkIndex: 99 }) : e))));
        assert.equal(next.length, 50);
      } finally {
        JSON.parse = parse;
      }
      assert.equal(parsed, 1);
    });
  }

  it("parses an answer of an unexpected shape whole", () => {
    const parser = new HealthAnswerParser();
    const pretty = Buffer.from(JSON.stringify([entry("a"), entry("b")], null, 2)); // two spaces: neither form
    assert.deepEqual(parser.parse(pretty).map((instance) => instance.id), ["a", "b"]);
    // The boundary text inside a free-form proxy config: the cut is wrong, the entry does not
    // parse, and the answer is parsed whole instead.
    const tricky = entry("x", { proxyConfig: { list: [{ a: [1] }, { Node: { deep: true } }] } });
    assert.deepEqual(parser.parse(compact([entry("a"), tricky, entry("b")])).map((instance) => instance.id), ["a", "x", "b"]);
    assert.throws(() => parser.parse(Buffer.from("[{\"Node\":{")));
  });
});
