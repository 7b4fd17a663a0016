import assert from "node:assert/strict";
import { commonPrefixLength, commonSuffixLength } from "../../src/client/discovery/common-bytes.js";
import { HealthAnswerParser, toInstance, type HealthEntry } from "../../src/client/discovery/health-answer.js";

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

    it(`keeps up with entries that leave and join in the middle, parsing only the newcomers (${form})`, () => {
      const parser = new HealthAnswerParser();
      const entries = Array.from({ length: 50 }, (_, n) => entry(`i-${String(n).padStart(2, "0")}`));
      const first = parser.parse(answer(entries));
      const parse = JSON.parse;
      let parsed = 0;
      JSON.parse = (text: string) => (parsed++, parse(text) as unknown);
      let next: ReturnType<HealthAnswerParser["parse"]>;
      try {
        // i-10 leaves (its check failed), a newcomer lands between i-29 and i-30, and the very
        // last entry changes its check only.
        const changed = [...entries.slice(0, 10), ...entries.slice(11, 30), entry("i-29b"), ...entries.slice(30, 49), entry("i-49", { checkIndex: 12 })];
        next = parser.parse(answer(changed));
      } finally {
        JSON.parse = parse;
      }
      assert.equal(parsed, 2); // the newcomer, and i-49's new text (the same instance again)
      assert.deepEqual(
        next.map((instance) => instance.id),
        [...first.slice(0, 10), ...first.slice(11, 30)].map((instance) => instance.id).concat("i-29b", ...first.slice(30).map((instance) => instance.id)),
      );
      for (const instance of next) if (instance.id !== "i-29b") assert.equal(instance, first.find((earlier) => earlier.id === instance.id));
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

  it("follows Consul's own reordering, the last entry moved into the place of one that left, parsing nothing", () => {
    const parser = new HealthAnswerParser();
    const entries = Array.from({ length: 30 }, (_, n) => entry(`i-${n}`));
    const first = parser.parse(indented(entries));
    const parse = JSON.parse;
    let parsed = 0;
    JSON.parse = (text: string) => (parsed++, parse(text) as unknown);
    let next: ReturnType<HealthAnswerParser["parse"]>;
    try {
      next = parser.parse(indented([entries[29]!, ...entries.slice(1, 29)]));
    } finally {
      JSON.parse = parse;
    }
    assert.equal(parsed, 0);
    assert.deepEqual(next, [first[29], ...first.slice(1, 29)]);
    assert.equal(parser.changed, true);
  });

  for (const [form, answer] of [["compact", compact], ["indented", indented]] as const) {
    it(`gives what a whole parse gives over a random run of joins, leaves, edits and reorders, reusing unchanged instances (${form})`, () => {
      // A small deterministic generator, so a failure replays.
      let seed = form === "compact" ? 7 : 11;
      const random = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
      let serial = 0;
      let entries = Array.from({ length: 40 }, () => entry(`i-${String(serial++).padStart(3, "0")}`));
      const parser = new HealthAnswerParser();
      let previous = parser.parse(answer(entries));
      for (let step = 0; step < 300; step++) {
        const before = entries;
        entries = [...entries];
        for (let change = 1 + random(3); change > 0; change--) {
          const at = random(entries.length + 1);
          const kind = random(entries.length > 3 ? 6 : 2);
          if (kind === 0) entries.splice(at, 0, entry(`i-${String(serial++).padStart(3, "0")}`));
          else if (kind === 1) entries.push(entry(`i-${String(serial++).padStart(3, "0")}`));
          else if (kind === 2) entries.splice(Math.min(at, entries.length - 1), 1);
          else if (kind === 3) entries[Math.min(at, entries.length - 1)] = entry(entries[Math.min(at, entries.length - 1)]!.Service.ID, { checkIndex: 100 + step });
          else if (kind === 4) entries[Math.min(at, entries.length - 1)] = entry(entries[Math.min(at, entries.length - 1)]!.Service.ID, { port: 9000 + random(50) });
          else entries.reverse();
        }
        const instances = parser.parse(answer(entries));
        assert.deepEqual(instances, entries.map((e) => toInstance(e as HealthEntry)), `step ${step}`);
        // An instance whose fields did not change is the same object as before.
        const earlier = new Map(previous.map((instance) => [instance.id, instance]));
        for (const instance of instances) {
          const then = earlier.get(instance.id);
          if (then && then.port === instance.port) assert.equal(instance, then, `step ${step}: ${instance.id} reused`);
        }
        const sameOrder = instances.length === previous.length && instances.every((instance, n) => instance === previous[n]);
        assert.equal(parser.changed, !sameOrder, `step ${step}: changed`);
        if (before.length === entries.length && before.every((e, n) => e === entries[n])) assert.equal(parser.changed, false);
        previous = instances;
      }
    });
  }

  it("finds the bytes two answers share at their start and end", () => {
    const a = Buffer.from("x".repeat(10_000) + "abc" + "y".repeat(9000));
    const b = Buffer.from("x".repeat(10_000) + "abXc" + "y".repeat(9000));
    assert.equal(commonPrefixLength(a, b), 10_002);
    assert.equal(commonSuffixLength(a, b), 9001);
    assert.equal(commonSuffixLength(a, b, 50), 50);
    assert.equal(commonPrefixLength(a, a), a.length);
    assert.equal(commonPrefixLength(Buffer.from("q"), a), 0);
    assert.equal(commonSuffixLength(Buffer.from("ab"), Buffer.from("b")), 1);
    for (let cut = 0; cut < 300; cut += 7) {
      const c = Buffer.from(a);
      c[cut] = 0x21;
      assert.equal(commonPrefixLength(a, c), cut);
      assert.equal(commonSuffixLength(a, c), a.length - cut - 1);
    }
  });
});
