import { Histogram, type HistogramConfiguration, type LabelValues, type ObserveDataWithExemplar, type MetricObjectWithValues, type MetricValueWithName } from "prom-client";

type Labels = Partial<Record<string, string | number>>;

/** The series prom-client's registry reads from a histogram (`getForPromString`, which its own `get` splays). */
interface PromStringSeries {
  labels: Labels;
  sharedLabels: Labels;
  value: number;
  metricName: string;
  exemplar: null | undefined;
}
type PromStringData = MetricObjectWithValues<MetricValueWithName<string>> & { values: PromStringSeries[] };
const baseGetForPromString = (Histogram.prototype as unknown as { getForPromString(this: Histogram): Promise<PromStringData> }).getForPromString;

/**
 * BoundHistogram is a prom-client `Histogram` whose labelled children keep their own counts, so
 * that observing through a child (`labels(...)`, cached by the caller) is a bucket search and
 * three additions.
 *
 * Why not prom-client's own child: in prom-client 15 every `observe` on a child converts,
 * validates and hashes the label set again, and finds the bucket through a number-to-string
 * property key: about a microsecond per observation, and the mesh client observes twice per
 * call (meshkit_client_call_duration_seconds and meshkit_client_attempt_duration_seconds), the
 * server once. prom-client has no pre-bound child. Everything else stays prom-client's: the
 * registry, the text and JSON exposition (the children are handed to it as the series its own
 * histogram produces, so the output is the same byte for byte: see its unit test), `collect`,
 * `reset`, `remove`, `zero` and timers.
 */
export class BoundHistogram<T extends string = string> extends Histogram<T> {
  readonly #names: readonly string[];
  readonly #bounds: readonly number[];
  readonly #children = new Map<string, BoundChild>();

  constructor(configuration: HistogramConfiguration<T> & { buckets: number[] }) {
    if ((configuration as { enableExemplars?: boolean }).enableExemplars) throw new Error("BoundHistogram does not keep exemplars");
    super(configuration);
    this.#names = [...(configuration.labelNames ?? [])];
    this.#bounds = [...configuration.buckets].sort((a, b) => a - b);
    // prom-client's constructor sets `observe` on the instance, which would shadow ours.
    delete (this as { observe?: unknown }).observe;
    // Without labels, prom-client shows the one series from the start: so does its child here.
    if (this.#names.length === 0) {
      super.reset();
      this.#child({});
    }
  }

  override labels(...values: string[]): Histogram.Internal<T>;
  override labels(labels: LabelValues<T>): Histogram.Internal<T>;
  override labels(...args: unknown[]): Histogram.Internal<T> {
    return this.#child(this.#labelsOf(args)) as Histogram.Internal<T>;
  }

  override observe(value: number): void;
  override observe(labels: LabelValues<T>, value: number): void;
  override observe(observeData: ObserveDataWithExemplar<T>): void;
  override observe(labelsOrValue: LabelValues<T> | ObserveDataWithExemplar<T> | number, value?: number): void {
    if (typeof labelsOrValue === "number") this.#child({}).observe(labelsOrValue);
    else if (value === undefined) throw new Error("BoundHistogram does not keep exemplars: observe(labels, value)");
    else this.#child(this.#checked(labelsOrValue as Labels)).observe(value);
  }

  override zero(labels: LabelValues<T>): void {
    this.#child(this.#checked(labels as Labels)).clear();
  }

  override remove(...values: string[]): void;
  override remove(labels: LabelValues<T>): void;
  override remove(...args: unknown[]): void {
    this.#children.delete(this.#keyOf(this.#labelsOf(args)));
    super.remove(...(args as string[]));
  }

  override reset(): void {
    super.reset();
    // prom-client's constructor calls reset before this class has set up its fields.
    if (!(#children in this)) return;
    this.#children.clear();
  }

  /** What the registry reads: prom-client's own series (none, unless set through an API this class does not route), then the children's. */
  async getForPromString(): Promise<PromStringData> {
    const data = await baseGetForPromString.call(this);
    const bucket = `${data.name}_bucket`;
    for (const child of this.#children.values()) {
      let cumulative = 0;
      for (let i = 0; i < this.#bounds.length; i++) {
        cumulative += child.counts[i]!;
        data.values.push({ labels: { le: this.#bounds[i]! }, sharedLabels: { ...child.labels }, value: cumulative, metricName: bucket, exemplar: null });
      }
      data.values.push(
        { labels: { le: "+Inf" }, sharedLabels: { ...child.labels }, value: child.count, metricName: bucket, exemplar: null },
        { labels: {}, sharedLabels: { ...child.labels }, value: child.sum, metricName: `${data.name}_sum`, exemplar: undefined },
        { labels: {}, sharedLabels: { ...child.labels }, value: child.count, metricName: `${data.name}_count`, exemplar: undefined },
      );
    }
    return data;
  }

  #labelsOf(args: unknown[]): Labels {
    if (args.length === 1 && typeof args[0] === "object" && args[0] !== null) return this.#checked(args[0] as Labels);
    if (args.length !== this.#names.length) throw new Error(`Invalid number of arguments (${args.length}): "${args.join(", ")}" for label names: "${this.#names.join(", ")}".`);
    return Object.fromEntries(this.#names.map((name, i) => [name, args[i] as string | number]));
  }

  #checked(labels: Labels): Labels {
    for (const name of Object.keys(labels)) {
      if (!this.#names.includes(name)) throw new Error(`Added label "${name}" is not included in initial labelset: ${JSON.stringify(this.#names)}`);
    }
    return labels;
  }

  #keyOf(labels: Labels): string {
    return this.#names.map((name) => (labels[name] === undefined ? "\u0001" : String(labels[name]))).join("\u0000");
  }

  #child(labels: Labels): BoundChild {
    const key = this.#keyOf(labels);
    let child = this.#children.get(key);
    if (!child) this.#children.set(key, (child = new BoundChild(this, { ...labels }, this.#bounds)));
    return child;
  }
}

/** One labelled series: per-bucket counts (not cumulative), sum and count. */
class BoundChild {
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(
    private readonly histogram: BoundHistogram,
    readonly labels: Labels,
    private readonly bounds: readonly number[],
  ) {
    this.counts = new Float64Array(bounds.length);
  }

  observe(value: number): void {
    if (!Number.isFinite(value)) throw new TypeError(`Value is not a valid number: ${value}`);
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]!) i++;
    if (i < bounds.length) this.counts[i] = this.counts[i]! + 1;
    this.sum += value;
    this.count++;
  }

  /** As prom-client's: the returned function observes the seconds since, with any labels it is given added. */
  startTimer(): (labels?: Labels) => number {
    const start = process.hrtime.bigint();
    return (labels) => {
      const seconds = Number(process.hrtime.bigint() - start) / 1e9;
      if (labels && Object.keys(labels).length > 0) this.histogram.observe({ ...this.labels, ...labels }, seconds);
      else this.observe(seconds);
      return seconds;
    };
  }

  clear(): void {
    this.counts.fill(0);
    this.sum = 0;
    this.count = 0;
  }
}
