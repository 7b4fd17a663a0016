import { commonPrefixLength, commonSuffixLength } from "./common-bytes.js";
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

/** The last answer: its bytes, where each entry lies in them, and the instance made of each. */
interface LastAnswer {
  body: Buffer;
  form: AnswerForm | undefined;
  /** Entry n is `body[starts[n], stops[n])`; -1 where its bytes are not known (an answer parsed whole). */
  starts: number[];
  stops: number[];
  instances: Instance[];
}
const noAnswer: LastAnswer = { body: Buffer.alloc(0), form: undefined, starts: [], stops: [], instances: [] };

/** Entries being collected for a new answer. */
interface Entries {
  starts: number[];
  stops: number[];
  instances: Instance[];
}

/**
 * HealthAnswerParser turns each answer of a health watch into instances, parsing only what
 * changed. Consul has no delta API for health: every answer is the whole set (565 KB for 1,000
 * instances), and one flipped check changes one entry. The parser keeps the last answer's bytes
 * and where each entry lay in them, and:
 * 1. finds the bytes the new answer shares with the last at its start and at its end (a few
 *    native comparisons, common-bytes.ts): every entry inside them is unchanged, at the same
 *    place or shifted by the difference in length, and is taken as it is;
 * 2. walks what lies between entry by entry: an entry that is, byte for byte, the one that came
 *    next in the last answer (Consul sorts by node and service id) is taken as it is; the others
 *    are cut by searching for the boundary, matched by their service id and parsed.
 * An instance whose fields did not change (a check's output or index changed, not the instance)
 * is the previous object again, so callers compare sets by identity, and `changed` says whether
 * the answer's instances differ from the last one's at all.
 *
 * It works on the bytes, never on the whole answer as one string, and makes next to nothing per
 * unchanged entry: at a thousand instances answering every 150 ms, what an answer leaves behind
 * is what V8 spends its full collections on (measured: the biggest part of a change's cost).
 *
 * An answer that does not have the expected shape is parsed whole; a wrong cut cannot pass
 * unseen, since an entry is parsed the first time its bytes are seen (so every entry kept is one
 * whole JSON object, and bytes equal to it end where it ends) and a cut in the wrong place is not
 * valid JSON.
 */
export class HealthAnswerParser {
  #last: LastAnswer = noAnswer;
  /** The last answer's entry index by service id, made when an entry is out of the last order. */
  #lastById: Map<string, number> | undefined;
  /** Whether the last parse's instances differ from those of the parse before it (order included). */
  changed = true;

  /** parse returns the answer's instances, in its order. */
  parse(body: Buffer): Instance[] {
    try {
      const instances = this.#incremental(body);
      if (instances) return instances;
    } catch {
      // Not the shape expected after all: parse it whole below.
    }
    const instances = (JSON.parse(body.toString("utf8")) as HealthEntry[]).map((entry) => {
      const parsed = toInstance(entry);
      const previous = this.#previousById(parsed.id);
      return previous !== undefined && sameInstance(previous, parsed) ? previous : parsed;
    });
    const unknown = instances.map(() => -1);
    this.#remember({ body: noAnswer.body, form: undefined, starts: unknown, stops: unknown, instances });
    return instances;
  }

  #remember(answer: LastAnswer): void {
    const before = this.#last.instances;
    this.changed = answer.instances.length !== before.length || answer.instances.some((instance, n) => instance !== before[n]);
    this.#last = answer;
    this.#lastById = undefined;
  }

  #previousIndex(id: string): number | undefined {
    if (this.#lastById === undefined) {
      this.#lastById = new Map();
      this.#last.instances.forEach((instance, n) => this.#lastById!.set(instance.id, n));
    }
    return this.#lastById.get(id);
  }

  #previousById(id: string): Instance | undefined {
    const n = this.#previousIndex(id);
    return n === undefined ? undefined : this.#last.instances[n];
  }

  /** The instances, parsing changed entries only; undefined when the answer is not shaped as expected. */
  #incremental(body: Buffer): Instance[] | undefined {
    let end = body.length;
    while (end > 0 && body[end - 1]! <= 32) end--; // the encoder's trailing newline
    if (end < 2 || body[0] !== 0x5b || body[end - 1] !== 0x5d) return undefined; // [ ... ]
    if (end === 2) {
      this.#remember({ body, form: undefined, starts: [], stops: [], instances: [] });
      return [];
    }
    const form = forms.find((form) => body.length >= form.head.length && body.compare(form.head, 0, form.head.length, 0, form.head.length) === 0);
    if (form === undefined) return undefined;
    let lastStop = end - 1; // after the last entry's closing brace
    while (lastStop > 0 && body[lastStop - 1]! <= 32) lastStop--;
    const entries = this.#sharedWithLast(body, form, lastStop) ?? this.#walk(body, form, lastStop, form.firstAt, lastStop, 0, { starts: [], stops: [], instances: [] });
    if (entries === undefined) return undefined;
    this.#remember({ body, form, ...entries });
    return entries.instances;
  }

  /**
   * The entries, taking those inside the bytes shared with the last answer at the start and at
   * the end as they are and walking only the rest; undefined when the last answer's bytes are
   * not known in the same form, or the shared runs do not line up with entries as expected.
   */
  #sharedWithLast(body: Buffer, form: AnswerForm, lastStop: number): Entries | undefined {
    const last = this.#last;
    const count = last.instances.length;
    if (last.form !== form || count === 0 || last.starts[0]! < 0) return undefined;
    const prefix = commonPrefixLength(body, last.body);
    const suffix = commonSuffixLength(body, last.body, Math.min(body.length, last.body.length) - prefix);
    const shift = body.length - last.body.length;
    // Entries [0, head) lie inside the shared start, each with the boundary that follows it.
    let head = 0;
    while (head < count && last.stops[head]! - form.endOffset + form.boundary.length <= prefix) head++;
    // Entries [tail, count) lie inside the shared end, each with the boundary before it.
    let tail = count;
    while (tail > head && last.starts[tail - 1]! - form.nextOffset >= last.body.length - suffix) tail--;
    // The last entry has no boundary after it: it is shared when the whole answer is.
    if (head === count - 1 && prefix === last.body.length && prefix === body.length) head = count;
    const entries: Entries = { starts: last.starts.slice(0, head), stops: last.stops.slice(0, head), instances: last.instances.slice(0, head) };
    if (head === count) return lastStop === last.stops[count - 1] ? entries : undefined;
    // What lies between: from after entry head - 1's boundary to before entry tail's.
    const from = head === 0 ? form.firstAt : last.stops[head - 1]! - form.endOffset + form.nextOffset;
    const to = tail === count ? lastStop : last.starts[tail]! + shift - form.nextOffset + form.endOffset;
    if (from < to) {
      if (this.#walk(body, form, lastStop, from, to, head, entries) === undefined) return undefined;
    } else if (from - to !== form.nextOffset - form.endOffset) {
      return undefined; // nothing between, yet not one boundary apart: the entries do not line up
    }
    for (let n = tail; n < count; n++) {
      entries.starts.push(last.starts[n]! + shift);
      entries.stops.push(last.stops[n]! + shift);
      entries.instances.push(last.instances[n]!);
    }
    return entries;
  }

  /**
   * Walks the entries in `body[from, to)` (`to` the end of the last of them) into `entries`: an
   * entry equal to the last answer's next expected one (starting at index `next`) is taken
   * as it is, its end found by that length; the others are cut at the boundary, matched by
   * their service id and parsed. Undefined when the bytes are not entries as expected.
   */
  #walk(body: Buffer, form: AnswerForm, lastStop: number, from: number, to: number, next: number, entries: Entries): Entries | undefined {
    const last = this.#last;
    for (let start = from; ; ) {
      let stop = -1;
      let instance: Instance | undefined;
      // The last answer's entries this one most likely is, tried byte for byte: the one after the
      // entry matched before it; the one at its own place; and the last answer's last entry, which
      // Consul moves into the place of an entry that leaves (its result is a slice, and a
      // deletion there swaps the last element in).
      const place = entries.instances.length;
      const final = last.instances.length - 1;
      for (let attempt = 0; attempt < 3 && last.form === form; attempt++) {
        const guess = attempt === 0 ? next : attempt === 1 ? place : final;
        if (attempt > 0 && guess === next) continue;
        stop = this.#sameAs(guess, body, form, start, to, lastStop);
        if (stop >= 0) {
          instance = last.instances[guess]!;
          next = guess + 1;
          break;
        }
      }
      if (instance === undefined) {
        const boundary = body.indexOf(form.boundary, start);
        stop = boundary < 0 || boundary >= lastStop ? lastStop : boundary + form.endOffset;
        if (stop > to) return undefined;
        const idAt = body.indexOf(form.serviceId, start);
        if (idAt < 0 || idAt >= stop) return undefined;
        const idFrom = idAt + form.serviceId.length;
        const id = body.toString("latin1", idFrom, body.indexOf(0x22, idFrom));
        const known = this.#matching(id, next);
        const knownFrom = known === undefined || last.form !== form ? -1 : last.starts[known]!;
        if (known !== undefined && knownFrom >= 0 && body.compare(last.body, knownFrom, last.stops[known]!, start, stop) === 0) {
          instance = last.instances[known]!;
        } else {
          const parsed = toInstance(JSON.parse(body.toString("utf8", start, stop)) as HealthEntry);
          const previous = known === undefined ? undefined : last.instances[known];
          instance = previous !== undefined && sameInstance(previous, parsed) ? previous : parsed;
        }
        if (known !== undefined) next = known + 1;
      }
      entries.starts.push(start);
      entries.stops.push(stop);
      entries.instances.push(instance);
      if (stop === to) return entries;
      start = stop - form.endOffset + form.nextOffset;
      if (start >= to) return undefined;
    }
  }

  /**
   * Where the entry at `start` ends if it is, byte for byte, the last answer's entry `n` (its
   * length tells where to look, so nothing is searched), or -1.
   */
  #sameAs(n: number, body: Buffer, form: AnswerForm, start: number, to: number, lastStop: number): number {
    const last = this.#last;
    const from = last.starts[n];
    if (from === undefined || from < 0) return -1;
    const length = last.stops[n]! - from;
    const stop = start + length;
    if (stop > to || body.compare(last.body, from, from + length, start, stop) !== 0) return -1;
    return stop === lastStop || endsBeforeBoundary(body, stop, form) ? stop : -1;
  }

  /** The last answer's entry for service id `id`: the one expected next, the one after it (the expected one left), or any. */
  #matching(id: string, next: number): number | undefined {
    const instances = this.#last.instances;
    if (next < instances.length && instances[next]!.id === id) return next;
    if (next + 1 < instances.length && instances[next + 1]!.id === id) return next + 1;
    return this.#previousIndex(id);
  }
}

/** Whether the boundary between two entries starts where an entry ending at `stop` ends. */
function endsBeforeBoundary(body: Buffer, stop: number, form: AnswerForm): boolean {
  const at = stop - form.endOffset;
  return body.compare(form.boundary, 0, form.boundary.length, at, at + form.boundary.length) === 0;
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
