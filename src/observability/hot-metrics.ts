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

/** The cell of `values` (in `labelNames`' order), made the first time it is asked for. */
function cellOf<C>(
  name: string,
  cells: Map<string, C>,
  labelNames: readonly string[],
  values: readonly string[],
  make: (labels: Record<string, string>) => C,
): C {
  if (values.length !== labelNames.length) throw new Error(`${name}: ${labelNames.length} label values expected, got ${values.length}`);
  const key = values.join('\0');
  let cell = cells.get(key);
  if (!cell) {
    const labels: Record<string, string> = {};
    for (const [i, n] of labelNames.entries()) labels[n] = values[i] as string;
    cells.set(key, (cell = make(labels)));
  }
  return cell;
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
    return cellOf(this.name, this.cells, this.labelNames, values, (labels) => new CounterCell(labels));
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

/** One label combination's observations: callers keep it and observe into it. */
export class HistogramCell {
  readonly labels: Record<string, string>;
  /** counts[i]: observations in (upperBounds[i-1], upperBounds[i]]; the last one above every bound. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  private readonly upperBounds: readonly number[];

  constructor(upperBounds: readonly number[], labels: Record<string, string>) {
    this.upperBounds = upperBounds;
    this.labels = labels;
    this.counts = new Float64Array(upperBounds.length + 1);
  }

  observe(value: number): void {
    const bounds = this.upperBounds;
    let i = 0;
    while (i < bounds.length && value > (bounds[i] as number)) i++;
    this.counts[i]!++;
    this.sum += value;
    this.count++;
  }
}

export class HotHistogram<L extends string = never> {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly upperBounds: readonly number[];
  private readonly labelNames: readonly L[];
  private readonly cells = new Map<string, HistogramCell>();
  private readonly unlabelled: HistogramCell | undefined;

  constructor(config: MetricConfig<L> & { readonly buckets: readonly number[] }) {
    this.name = config.name;
    this.help = config.help;
    this.upperBounds = [...config.buckets].sort((a, b) => a - b);
    this.labelNames = config.labelNames ?? [];
    if (this.labelNames.length === 0) this.cells.set('', (this.unlabelled = new HistogramCell(this.upperBounds, {})));
    for (const r of config.registers) r.registerMetric(this as never);
  }

  /** The cell of these label values (in labelNames' order): look it up once, then observe() into it. */
  labels(...values: string[]): HistogramCell {
    return cellOf(this.name, this.cells, this.labelNames, values, (labels) => new HistogramCell(this.upperBounds, labels));
  }

  /** Unlabelled histograms only; a labelled one is observed through its cells. */
  observe(value: number): void {
    if (!this.unlabelled) throw new Error(`${this.name} has labels: ${this.labelNames.join(', ')}`);
    this.unlabelled.observe(value);
  }

  async get(): Promise<Rendered> {
    const values: Rendered['values'] = [];
    // prom-client's order and label order: each label set's buckets, +Inf, sum, count; le first
    for (const cell of this.cells.values()) {
      let cumulative = 0;
      for (let i = 0; i < this.upperBounds.length; i++) {
        cumulative += cell.counts[i] as number;
        values.push({ labels: { le: this.upperBounds[i] as number, ...cell.labels }, value: cumulative, metricName: `${this.name}_bucket` });
      }
      values.push({ labels: { le: '+Inf', ...cell.labels }, value: cell.count, metricName: `${this.name}_bucket` });
      values.push({ labels: { ...cell.labels }, value: cell.sum, metricName: `${this.name}_sum` });
      values.push({ labels: { ...cell.labels }, value: cell.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: 'histogram', values, aggregator: 'sum' };
  }

  reset(): void {
    for (const cell of this.cells.values()) {
      cell.counts.fill(0);
      cell.sum = 0;
      cell.count = 0;
    }
  }
}
