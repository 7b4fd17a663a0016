import type { Instance } from "./instance.js";

/** HealthEntry is the part of one `/v1/health/service` (or `/health/connect`) entry an instance is made of. */
export interface HealthEntry {
  Node?: { Address?: string };
  Service: { ID: string; Address?: string; Port: number; Tags?: string[] | null; Meta?: Record<string, string> | null; Weights?: { Passing?: number } };
}

/**
 * How Consul writes a health answer, in its two forms: Go's encoding/json, compact
 * (`[{"Node":{...},"Service":{"ID":"...",...},"Checks":[...]},...]`), or indented by four spaces
 * (a -dev agent, or `?pretty`), fields in struct order either way. In the compact form `Checks` is
 * an entry's last field, so an entry ends and the next begins exactly at the boundary (quotes
 * inside strings are escaped, and a check's `Node` is a string, not an object); in the indented
 * form the indentation marks the top level.
 */
interface AnswerForm {
  /** The answer's first bytes up to the first entry's opening brace, and a little of it. */
  head: Buffer;
  /** Where the first entry starts. */
  firstAt: number;
  /** Between two entries: from the end of one to the `"Node"` of the next. */
  boundary: Buffer;
  /** From the boundary's start: the end of the entry before it, the start of the entry after it. */
  endOffset: number;
  nextOffset: number;
  /** Just before an entry's service id. */
  serviceId: Buffer;
}
const forms: AnswerForm[] = [
  { head: Buffer.from('[{"Node":{'), firstAt: 1, boundary: Buffer.from(']},{"Node":{'), endOffset: 2, nextOffset: 3, serviceId: Buffer.from('"Service":{"ID":"') },
  {
    head: Buffer.from('[\n    {\n        "Node": {'),
    firstAt: 6,
    boundary: Buffer.from('\n    },\n    {\n        "Node": {'),
    endOffset: 6,
    nextOffset: 12,
    serviceId: Buffer.from('"Service": {\n            "ID": "'),
  },
];

/** An entry of the last answer: its bytes (a copy) and the instance made of them. */
interface KnownEntry {
  bytes: Buffer;
  instance: Instance;
}

/**
 * HealthAnswerParser turns each answer of a health watch into instances, parsing only what
 * changed. Consul has no delta API for health: every answer is the whole set (565 KB for 1,000
 * instances), and one flipped check changes one entry. The parser cuts the answer's bytes into
 * entries, compares each with the bytes of the same service id in the previous answer (memcmp),
 * reuses the instance where they are equal and parses only the others. An instance whose fields
 * did not change (a check's output or index changed, not the instance) is the previous object
 * again, so callers compare sets by identity.
 *
 * It works on the bytes, never on the whole answer as one string: a 565 KB string lands in V8's
 * old generation on every answer and, with the large heap of a thousand endpoints, drives a full
 * mark-compact every other change (measured: the biggest part of a change's cost).
 *
 * An answer that does not have the expected shape is parsed whole, as before; a wrong cut cannot
 * pass unseen, since an entry is parsed the first time its bytes are seen and a cut in the wrong
 * place is not valid JSON.
 */
export class HealthAnswerParser {
  /** The last answer's entries by service id (its JSON text). */
  #known = new Map<string, KnownEntry>();

  /** parse returns the answer's instances, in its order. */
  parse(body: Buffer): Instance[] {
    try {
      const instances = this.#incremental(body);
      if (instances) return instances;
    } catch {
      // Not the shape expected after all: parse it whole below.
    }
    const known = new Map<string, KnownEntry>();
    const instances = (JSON.parse(body.toString("utf8")) as HealthEntry[]).map((entry) => {
      const parsed = toInstance(entry);
      const previous = this.#known.get(JSON.stringify(parsed.id).slice(1, -1))?.instance;
      const instance = previous !== undefined && sameInstance(previous, parsed) ? previous : parsed;
      known.set(JSON.stringify(instance.id).slice(1, -1), { bytes: Buffer.alloc(0), instance });
      return instance;
    });
    this.#known = known;
    return instances;
  }

  /** The instances, parsing changed entries only; undefined when the answer is not shaped as expected. */
  #incremental(body: Buffer): Instance[] | undefined {
    let end = body.length;
    while (end > 0 && body[end - 1]! <= 32) end--; // the encoder's trailing newline
    if (end < 2 || body[0] !== 0x5b || body[end - 1] !== 0x5d) return undefined; // [ ... ]
    const known = new Map<string, KnownEntry>();
    const instances: Instance[] = [];
    if (end === 2) {
      this.#known = known;
      return instances;
    }
    const form = forms.find((form) => body.length >= form.head.length && body.compare(form.head, 0, form.head.length, 0, form.head.length) === 0);
    if (form === undefined) return undefined;
    let lastStop = end - 1; // after the last entry's closing brace
    while (lastStop > 0 && body[lastStop - 1]! <= 32) lastStop--;
    for (let start = form.firstAt; ; ) {
      const boundary = body.indexOf(form.boundary, start);
      const last = boundary < 0 || boundary >= end;
      const stop = last ? lastStop : boundary + form.endOffset;
      const idAt = body.indexOf(form.serviceId, start);
      if (idAt < 0 || idAt >= stop) return undefined;
      const idFrom = idAt + form.serviceId.length;
      const id = body.toString("latin1", idFrom, body.indexOf(0x22, idFrom));
      const entry = body.subarray(start, stop);
      const previous = this.#known.get(id);
      let instance: Instance;
      if (previous !== undefined && previous.bytes.equals(entry)) {
        instance = previous.instance;
        known.set(id, previous);
      } else {
        const parsed = toInstance(JSON.parse(entry.toString("utf8")) as HealthEntry);
        instance = previous !== undefined && sameInstance(previous.instance, parsed) ? previous.instance : parsed;
        known.set(id, { bytes: Buffer.from(entry), instance });
      }
      instances.push(instance);
      if (last) break;
      start = boundary + form.nextOffset;
    }
    this.#known = known;
    return instances;
  }
}

export function toInstance(entry: HealthEntry): Instance {
  const service = entry.Service;
  return {
    id: service.ID,
    address: service.Address || entry.Node?.Address || "127.0.0.1",
    port: service.Port,
    weight: Math.max(1, service.Weights?.Passing ?? 1),
    tags: service.Tags ?? [],
    meta: service.Meta ?? {},
  };
}

function sameInstance(a: Instance, b: Instance): boolean {
  if (a.address !== b.address || a.port !== b.port || a.weight !== b.weight || a.tags.length !== b.tags.length) return false;
  for (let n = 0; n < a.tags.length; n++) if (a.tags[n] !== b.tags[n]) return false;
  const aKeys = Object.keys(a.meta);
  if (aKeys.length !== Object.keys(b.meta).length) return false;
  for (const key of aKeys) if (a.meta[key] !== b.meta[key]) return false;
  return true;
}
