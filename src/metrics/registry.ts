// A small metrics registry (counters, gauges, histograms with labels) rendered in the Prometheus
// text exposition format 0.0.4. No globals: each relay owns its registry.

export type LabelValues<L extends string> = { readonly [K in L]: string };

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** Escapes a label value: backslash, double quote and line feed (text format 0.0.4). */
export function escapeLabelValue(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

function escapeHelp(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

export function formatValue(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  return String(v);
}

function labelText(names: readonly string[], values: readonly string[], extra = ""): string {
  const parts = names.map((n, i) => `${n}="${escapeLabelValue(values[i])}"`);
  if (extra) parts.push(extra);
  return parts.length ? `{${parts.join(",")}}` : "";
}

abstract class Metric<L extends string, S> {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly L[];
  protected series = new Map<string, { values: string[]; state: S }>();

  constructor(name: string, help: string, labelNames: readonly L[]) {
    if (!NAME.test(name)) throw new Error(`Cannot register metric "${name}": invalid name`);
    for (const l of labelNames) {
      if (!LABEL.test(l) || l.startsWith("__") || l === "le") {
        throw new Error(`Cannot register metric "${name}": invalid label name "${l}"`);
      }
    }
    this.name = name;
    this.help = help;
    this.labelNames = labelNames;
  }

  abstract readonly type: "counter" | "gauge" | "histogram";
  protected abstract initial(): S;
  abstract renderSamples(out: string[]): void;

  protected state(labels?: LabelValues<L>): S {
    const given = labels ? Object.keys(labels) : [];
    if (
      given.length !== this.labelNames.length ||
      !this.labelNames.every((l) => labels && l in labels)
    ) {
      throw new Error(
        `Cannot update metric "${this.name}": expected labels [${
          this.labelNames.join(", ")
        }], got [${given.join(", ")}]`,
      );
    }
    const values = this.labelNames.map((l) => String(labels![l]));
    const key = values.join("\u0000");
    let s = this.series.get(key);
    if (!s) this.series.set(key, s = { values, state: this.initial() });
    return s.state;
  }

  /** Every label set seen so far with its state (read-only use: status pages, tests). */
  protected entries(): { labels: Record<L, string>; state: S }[] {
    return [...this.series.values()].map(({ values, state }) => ({
      labels: Object.fromEntries(this.labelNames.map((l, i) => [l, values[i]])) as Record<
        L,
        string
      >,
      state,
    }));
  }
}

export class Counter<L extends string = never> extends Metric<L, { v: number }> {
  readonly type = "counter";
  #onInc?: (n: number, labels?: LabelValues<L>) => void;

  constructor(
    name: string,
    help: string,
    labelNames: readonly L[],
    onInc?: (n: number, labels?: LabelValues<L>) => void,
  ) {
    super(name, help, labelNames);
    this.#onInc = onInc;
    if (labelNames.length === 0) this.state();
  }

  protected initial() {
    return { v: 0 };
  }

  inc(labels?: LabelValues<L>, n = 1): void {
    if (!(n >= 0)) {
      throw new Error(`Cannot increment counter "${this.name}" by ${n}: must be non-negative`);
    }
    this.state(labels).v += n;
    this.#onInc?.(n, labels);
  }

  get(labels?: LabelValues<L>): number {
    return this.state(labels).v;
  }

  /** Sum over every label set. */
  total(): number {
    return this.entries().reduce((a, e) => a + e.state.v, 0);
  }

  values(): { labels: Record<L, string>; value: number }[] {
    return this.entries().map((e) => ({ labels: e.labels, value: e.state.v }));
  }

  renderSamples(out: string[]): void {
    for (const { values, state } of this.series.values()) {
      out.push(`${this.name}${labelText(this.labelNames, values)} ${formatValue(state.v)}`);
    }
  }
}

export class Gauge<L extends string = never> extends Metric<L, { v: number }> {
  readonly type = "gauge";

  constructor(name: string, help: string, labelNames: readonly L[]) {
    super(name, help, labelNames);
    if (labelNames.length === 0) this.state();
  }

  protected initial() {
    return { v: 0 };
  }

  set(value: number, labels?: LabelValues<L>): void {
    this.state(labels).v = value;
  }

  inc(labels?: LabelValues<L>, n = 1): void {
    this.state(labels).v += n;
  }

  dec(labels?: LabelValues<L>, n = 1): void {
    this.state(labels).v -= n;
  }

  /** Forgets every label set (a gauge per destination shows the current ones only). */
  reset(): void {
    this.series.clear();
    if (this.labelNames.length === 0) this.state();
  }

  get(labels?: LabelValues<L>): number {
    return this.state(labels).v;
  }

  values(): { labels: Record<L, string>; value: number }[] {
    return this.entries().map((e) => ({ labels: e.labels, value: e.state.v }));
  }

  renderSamples(out: string[]): void {
    for (const { values, state } of this.series.values()) {
      out.push(`${this.name}${labelText(this.labelNames, values)} ${formatValue(state.v)}`);
    }
  }
}

interface HistogramState {
  counts: number[];
  sum: number;
  count: number;
}

export class Histogram<L extends string = never> extends Metric<L, HistogramState> {
  readonly type = "histogram";
  readonly buckets: readonly number[];

  constructor(name: string, help: string, labelNames: readonly L[], buckets: readonly number[]) {
    super(name, help, labelNames);
    const sorted = [...buckets].filter((b) => b !== Infinity).sort((a, b) => a - b);
    if (sorted.length === 0 || new Set(sorted).size !== sorted.length) {
      throw new Error(
        `Cannot register histogram "${name}": buckets must be distinct and non-empty`,
      );
    }
    this.buckets = sorted;
    if (labelNames.length === 0) this.state();
  }

  protected initial(): HistogramState {
    return { counts: this.buckets.map(() => 0), sum: 0, count: 0 };
  }

  observe(value: number, labels?: LabelValues<L>): void {
    const s = this.state(labels);
    // Each observation lands in its smallest bucket; rendering accumulates.
    const i = this.buckets.findIndex((b) => value <= b);
    if (i >= 0) s.counts[i]++;
    s.sum += value;
    s.count++;
  }

  /** Number of observations for a label set. */
  count(labels?: LabelValues<L>): number {
    return this.state(labels).count;
  }

  renderSamples(out: string[]): void {
    for (const { values, state } of this.series.values()) {
      let cumulative = 0;
      this.buckets.forEach((b, i) => {
        cumulative += state.counts[i];
        const le = `le="${formatValue(b)}"`;
        out.push(`${this.name}_bucket${labelText(this.labelNames, values, le)} ${cumulative}`);
      });
      out.push(
        `${this.name}_bucket${labelText(this.labelNames, values, 'le="+Inf"')} ${state.count}`,
      );
      out.push(`${this.name}_sum${labelText(this.labelNames, values)} ${formatValue(state.sum)}`);
      out.push(`${this.name}_count${labelText(this.labelNames, values)} ${state.count}`);
    }
  }
}

interface Renderable {
  readonly name: string;
  readonly help: string;
  readonly type: string;
  renderSamples(out: string[]): void;
}

export class MetricsRegistry {
  #metrics = new Map<string, Renderable>();

  #add<M extends Renderable>(m: M): M {
    if (this.#metrics.has(m.name)) {
      throw new Error(`Cannot register metric "${m.name}": already registered`);
    }
    this.#metrics.set(m.name, m);
    return m;
  }

  counter<L extends string = never>(
    name: string,
    help: string,
    labelNames: readonly L[] = [],
    onInc?: (n: number, labels?: LabelValues<L>) => void,
  ): Counter<L> {
    return this.#add(new Counter<L>(name, help, labelNames, onInc));
  }

  gauge<L extends string = never>(
    name: string,
    help: string,
    labelNames: readonly L[] = [],
  ): Gauge<L> {
    return this.#add(new Gauge<L>(name, help, labelNames));
  }

  histogram<L extends string = never>(
    name: string,
    help: string,
    buckets: readonly number[],
    labelNames: readonly L[] = [],
  ): Histogram<L> {
    return this.#add(new Histogram<L>(name, help, labelNames, buckets));
  }

  /** The whole registry in text format 0.0.4 (serve as `text/plain; version=0.0.4`). */
  render(): string {
    const out: string[] = [];
    for (const m of this.#metrics.values()) {
      out.push(`# HELP ${m.name} ${escapeHelp(m.help)}`);
      out.push(`# TYPE ${m.name} ${m.type}`);
      m.renderSamples(out);
    }
    return out.join("\n") + "\n";
  }
}

export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";
