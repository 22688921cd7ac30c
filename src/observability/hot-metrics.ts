// Counters and histograms for the per-message path: one number add per message (a histogram
// finds its bucket in a short loop), rendered by prom-client's registry only at scrape time.
// prom-client's own metrics hash and validate their labels on every inc() and observe(), even
// on a child looked up once; that is per-message work a scrape every 15 s does not need.
import type { Registry } from 'prom-client';

interface MetricConfig<L extends string> {
  readonly name: string;
  readonly help: string;
  readonly labelNames?: readonly L[];
  readonly registers: readonly Registry[];
}

/** What prom-client's registry reads from a metric when it renders (Registry.getMetricsAsString). */
interface Rendered {
  name: string;
  help: string;
  type: 'counter' | 'histogram';
  values: Array<{ labels: Record<string, string | number>; value: number; metricName?: string }>;
  aggregator: 'sum';
}

/** One label combination's count: callers keep it and add to it. */
export class CounterCell {
  value = 0;
  readonly labels: Record<string, string>;
  constructor(labels: Record<string, string>) {
    this.labels = labels;
  }
  inc(by = 1): void {
    this.value += by;
  }
}

export class HotCounter<L extends string = never> {
  readonly name: string;
  readonly help: string;
  readonly type = 'counter';
  readonly aggregator = 'sum';
  private readonly labelNames: readonly L[];
  private readonly cells = new Map<string, CounterCell>();
  private readonly unlabelled: CounterCell | undefined;

  constructor(config: MetricConfig<L>) {
    this.name = config.name;
    this.help = config.help;
    this.labelNames = config.labelNames ?? [];
    if (this.labelNames.length === 0) this.cells.set('', (this.unlabelled = new CounterCell({})));
    for (const r of config.registers) r.registerMetric(this as never);
  }

  /** The cell of these label values (in labelNames' order): look it up once, then inc() it. */
  labels(...values: string[]): CounterCell {
    if (values.length !== this.labelNames.length) throw new Error(`${this.name}: ${this.labelNames.length} label values expected, got ${values.length}`);
    const key = values.join('\0');
    let cell = this.cells.get(key);
    if (!cell) {
      const labels: Record<string, string> = {};
      for (const [i, n] of this.labelNames.entries()) labels[n] = values[i] as string;
      this.cells.set(key, (cell = new CounterCell(labels)));
    }
    return cell;
  }

  /** Unlabelled: add `by`; labelled: prom-client's form, inc({ label: value }). */
  inc(labelsOrBy?: number | Partial<Record<L, string>>, by = 1): void {
    if (typeof labelsOrBy === 'object') {
      this.labels(...this.labelNames.map((n) => String(labelsOrBy[n] ?? ''))).inc(by);
      return;
    }
    if (!this.unlabelled) throw new Error(`${this.name} has labels: ${this.labelNames.join(', ')}`);
    this.unlabelled.value += labelsOrBy ?? 1;
  }

  async get(): Promise<Rendered> {
    const values = [...this.cells.values()].map((c) => ({ labels: c.labels, value: c.value }));
    return { name: this.name, help: this.help, type: 'counter', values, aggregator: 'sum' };
  }

  reset(): void {
    for (const c of this.cells.values()) c.value = 0;
  }
}

export class HotHistogram {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly upperBounds: readonly number[];
  /** counts[i]: observations in (upperBounds[i-1], upperBounds[i]]; the last one above every bound. */
  private readonly counts: Float64Array;
  private sum = 0;
  private count = 0;

  constructor(config: MetricConfig<never> & { readonly buckets: readonly number[] }) {
    this.name = config.name;
    this.help = config.help;
    this.upperBounds = [...config.buckets].sort((a, b) => a - b);
    this.counts = new Float64Array(this.upperBounds.length + 1);
    for (const r of config.registers) r.registerMetric(this as never);
  }

  observe(value: number): void {
    const bounds = this.upperBounds;
    let i = 0;
    while (i < bounds.length && value > (bounds[i] as number)) i++;
    this.counts[i]!++;
    this.sum += value;
    this.count++;
  }

  async get(): Promise<Rendered> {
    const values: Rendered['values'] = [];
    let cumulative = 0;
    for (let i = 0; i < this.upperBounds.length; i++) {
      cumulative += this.counts[i] as number;
      values.push({ labels: { le: this.upperBounds[i] as number }, value: cumulative, metricName: `${this.name}_bucket` });
    }
    values.push({ labels: { le: '+Inf' }, value: this.count, metricName: `${this.name}_bucket` });
    values.push({ labels: {}, value: this.sum, metricName: `${this.name}_sum` });
    values.push({ labels: {}, value: this.count, metricName: `${this.name}_count` });
    return { name: this.name, help: this.help, type: 'histogram', values, aggregator: 'sum' };
  }

  reset(): void {
    this.counts.fill(0);
    this.sum = 0;
    this.count = 0;
  }
}
