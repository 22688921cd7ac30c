// A sparkplug route's influx part: each metric of a message becomes a field, of the line-protocol
// type its Sparkplug datatype maps to (64-bit integers written with all their digits), grouped
// into points by measurement, tags and time. Measurement, tags and the field name are templates
// over the topic's levels (group, edgeNode, device, ...) and the metric name's own levels
// (metricLevels). Commands (NCMD, DCMD) write no point. What line protocol cannot hold (a DataSet, bytes, an unsigned value past
// int64) is refused with the metric's name: the message is dead-lettered, never half-written.
// The lines are written directly, as the client's Point writes them (tags and fields sorted by
// name, each escaped by the client's escapers; a field set twice keeps its last value): a Point
// per message cost an object per tag and field set, the sorted key lists and their closures,
// most of what a Sparkplug message allocated in its InfluxDB output.
import { RuleError } from '../../mapping/rule-error.ts';
import { compileTemplate, type Levels, type Template } from '../../mapping/template.ts';
import type { Refusal } from '../../outcome.ts';
import type { Encoded, MatchInput, RouteContext } from '../../router/route-output.ts';
import type { SparkplugMessage } from '../../sparkplug/sparkplug-message.ts';
import type { SparkplugMetric } from '../../sparkplug/sparkplug-payload.ts';
import { lineEscape } from './influx-client.ts';
import { escapedTag, maxInt64, minInt64, unsafeIdentifier, unsafeString } from './line-protocol.ts';

export interface InfluxSparkplugPart {
  readonly measurement: string;
  readonly tags: readonly string[] | Readonly<Record<string, string>>;
  readonly field?: string | undefined;
  readonly metricLevels?: readonly string[] | undefined;
  readonly skipMetrics: readonly string[];
}

export class InfluxSparkplugMapping {
  private readonly route: string;
  private readonly measurement: Template;
  private readonly tags: ReadonlyArray<readonly [string, Template]>;
  /** The tags' indexes sorted by name (as the client's Point writes them), a name given twice once, and each tag's escaped ",name=". */
  private readonly tagOrder: readonly number[];
  private readonly tagPrefixes: readonly string[];
  private readonly field: Template;
  private readonly metricLevels: readonly string[];
  private readonly skip: ReadonlyArray<(name: string) => boolean>;
  /** Measurement or a tag names a metric level: rendered per metric, else once per message. */
  private readonly perMetric: boolean;
  /** The field is the metric's name as it is (the default): no rendering per metric. */
  private readonly fieldIsName: boolean;

  constructor(part: InfluxSparkplugPart, context: RouteContext) {
    const at = (...rest: Array<string | number>) => [...context.path, ...rest];
    this.metricLevels = part.metricLevels ?? [];
    for (const [i, name] of this.metricLevels.entries()) {
      if (context.levels.includes(name)) throw new RuleError(at('metricLevels', i), `"${name}" is a topic level already`);
      if (name === 'metric' || name === 'metricRest') throw new RuleError(at('metricLevels', i), `"${name}" is sluice's own`);
    }
    const known = [...context.levels, ...this.metricLevels, 'metric', 'metricRest'];
    const compile = (path: Array<string | number>, source: string) => {
      try {
        return compileTemplate(source, known);
      } catch (err) {
        throw new RuleError(path, (err as Error).message);
      }
    };
    this.route = context.route;
    this.measurement = compile(at('measurement'), part.measurement);
    this.tags = Array.isArray(part.tags)
      ? part.tags.map((name, j) => [name, compile(at('tags', j), `{${name}}`)] as const)
      : Object.entries(part.tags).map(([name, t]) => {
          if (t.startsWith('$')) throw new RuleError(at('tags', name), 'a sparkplug route takes tags from levels, not JSON paths');
          return [name, compile(at('tags', name), t)] as const;
        });
    const lastOfName = new Map(this.tags.map(([name], i) => [name, i]));
    this.tagOrder = [...lastOfName.entries()].sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)).map(([, i]) => i);
    this.tagPrefixes = this.tags.map(([name]) => `,${lineEscape.tag(name)}=`);
    this.field = compile(at('field'), part.field ?? (this.metricLevels.length > 0 ? '{metricRest}' : '{metric}'));
    this.skip = part.skipMetrics.map((p) => (p.endsWith('*') ? (n: string) => n.startsWith(p.slice(0, -1)) : (n: string) => n === p));
    const metricNames = new Set([...this.metricLevels, 'metric', 'metricRest']);
    this.perMetric = [this.measurement, ...this.tags.map(([, t]) => t)].some((t) => t.uses.some((u) => metricNames.has(u)));
    this.fieldIsName = this.field.source === '{metric}' || (this.field.source === '{metricRest}' && this.metricLevels.length === 0);
  }

  encode(input: MatchInput): Encoded<string> {
    const m = input.payload as SparkplugMessage;
    // NCMD/DCMD are a host's requests to an edge node, not measurements (Kafka still gets them)
    if (m.topic.messageType === 'NCMD' || m.topic.messageType === 'DCMD') return { skip: true };
    const fallbackMs = m.payload.timestamp ?? input.message.receivedAt;
    const metrics = m.payload.metrics;
    // a Template's members are metrics of their own: listed with their names only when there is one
    let flat: Array<{ name: string; metric: SparkplugMetric }> | undefined;
    for (const metric of metrics) {
      if (metric.type !== 'Template') continue;
      flat = [];
      for (const x of metrics) flatten(x.name ?? '', x, flat);
      break;
    }
    // the message's points: most messages have one (one series, one time), kept without a Map
    let first: PointParts | undefined;
    let firstKey: string | number | undefined;
    let more: Map<string | number, PointParts> | undefined;
    // without metric levels in measurement and tags, every metric of the message shares them
    let shared: { series: string } | { refusal: Refusal } | undefined;
    const count = flat ? flat.length : metrics.length;
    for (let i = 0; i < count; i++) {
      const metric = flat ? (flat[i] as { metric: SparkplugMetric }).metric : (metrics[i] as SparkplugMetric);
      const name = flat ? (flat[i] as { name: string }).name : (metric.name ?? '');
      // transient: the spec says not to historize it
      if (metric.isNull || metric.isTransient || metric.value === null || this.skipped(name)) continue;
      const levels = this.perMetric || !this.fieldIsName ? this.levelsOf(input.levels, name) : input.levels;
      const head = this.perMetric ? this.head(levels, name) : (shared ??= this.head(input.levels, name));
      if ('refusal' in head) return head;
      const field = this.fieldIsName ? name : this.field.render(levels);
      // the field name comes from the device: a trailing backslash would escape the "="
      if (field === '' || unsafeIdentifier.test(field) || !field.isWellFormed())
        return this.refuse(`metric ${JSON.stringify(name)}: field name ${JSON.stringify(field)} is empty or unsafe`);
      const timeMs = metric.timestamp ?? fallbackMs;
      // the escaped series names the measurement and tag set: one point per series and time
      const key = this.perMetric ? `${head.series}\0${timeMs}` : timeMs;
      let point = first !== undefined && firstKey === key ? first : more?.get(key);
      if (point === undefined) {
        point = { series: head.series, time: nanosText(timeMs), fields: [] };
        if (first === undefined) {
          first = point;
          firstKey = key;
        } else {
          more ??= new Map();
          more.set(key, point);
        }
      }
      const value = fieldValue(metric);
      if (typeof value !== 'string')
        return this.refuse(
          `metric ${JSON.stringify(name)} (${metric.type}): ${value.problem}`,
          value.problem.startsWith('a ') ? 'sparkplug-unsupported-type' : 'mapping',
        );
      point.fields.push(field, value);
    }
    if (first === undefined) return { skip: true };
    if (more === undefined) return { item: lineOf(first), eventTimeMs: m.payload.timestamp };
    const lines = [lineOf(first)];
    for (const p of more.values()) lines.push(lineOf(p));
    return { item: lines.join('\n'), eventTimeMs: m.payload.timestamp };
  }

  private refuse(error: string, reason = 'mapping'): { refusal: Refusal } {
    return { refusal: { reason, stage: 'map', route: this.route, sink: 'influx', error } };
  }

  private skipped(name: string): boolean {
    for (const s of this.skip) if (s(name)) return true;
    return false;
  }

  /** The escaped measurement and tags for these levels ("measurement,tag=value,...", tags sorted by name), or why they cannot be written. */
  private head(levels: Levels, metric: string): { series: string } | { refusal: Refusal } {
    const measurement = this.measurement.render(levels);
    if (measurement === '' || unsafeIdentifier.test(measurement))
      return this.refuse(`metric ${metric}: measurement ${JSON.stringify(measurement)} is empty or unsafe`);
    // checked in the rules' order (the first bad one is the one reported), written in the names'
    const values = tagValues;
    for (let i = 0; i < this.tags.length; i++) {
      const [tag, t] = this.tags[i] as readonly [string, Template];
      const value = t.render(levels);
      values[i] = value;
      if (value === '') continue; // line protocol has no empty tags
      if (unsafeIdentifier.test(value) || !value.isWellFormed())
        return this.refuse(`metric ${metric}: tag ${tag} has a control character, a trailing backslash or a lone UTF-16 surrogate`);
    }
    let series = lineEscape.measurement(measurement);
    for (const i of this.tagOrder) {
      const value = values[i] as string;
      if (value !== '') series += (this.tagPrefixes[i] as string) + escapedTag(value);
    }
    return { series };
  }

  private levelsOf(levels: Levels, metric: string): Levels {
    const out: Record<string, string> = { ...levels, metric };
    if (this.metricLevels.length === 0) {
      out.metricRest = metric;
      return out;
    }
    const parts = metric.split('/');
    this.metricLevels.forEach((name, i) => {
      out[name] = i < parts.length - 1 ? (parts[i] as string) : '';
    });
    out.metricRest = parts.slice(Math.min(this.metricLevels.length, parts.length - 1)).join('/');
    return out;
  }
}

/** A Template's members become metrics of their own, named parent/member; definitions carry no values. */
function flatten(name: string, metric: SparkplugMetric, out: Array<{ name: string; metric: SparkplugMetric }>): void {
  if (metric.type === 'Template' && metric.value !== null && typeof metric.value === 'object' && 'metrics' in metric.value) {
    if (metric.value.isDefinition) return;
    for (const member of metric.value.metrics) flatten(`${name}/${member.name ?? ''}`, member, out);
    return;
  }
  out.push({ name, metric });
}

/** One point of a message: its escaped series, its time in nanoseconds, its fields as name, value, name, value... in the order set. */
interface PointParts {
  readonly series: string;
  readonly time: string;
  readonly fields: string[];
}

/** Reused by every message (the encoding is synchronous): the tag values in the rules' order, a point's field order, a line's pieces. */
const tagValues: string[] = [];
const fieldOrder: number[] = [];
const lineParts: string[] = [];

/** The point as its line: fields sorted by name, a name set twice with its last value (as on a Point). */
function lineOf(p: PointParts): string {
  const f = p.fields;
  const n = f.length / 2;
  const order = fieldOrder;
  order.length = n;
  // sorted by name in place (a message has a few fields); stable: of a name set twice, the later stays later
  for (let i = 0; i < n; i++) {
    const name = f[2 * i] as string;
    let j = i;
    while (j > 0 && (f[2 * (order[j - 1] as number)] as string) > name) {
      order[j] = order[j - 1] as number;
      j--;
    }
    order[j] = i;
  }
  const parts = lineParts;
  let k = 0;
  parts[k++] = p.series;
  let sep = ' ';
  for (let j = 0; j < n; j++) {
    const i = order[j] as number;
    const name = f[2 * i] as string;
    if (j + 1 < n && f[2 * (order[j + 1] as number)] === name) continue;
    parts[k++] = sep;
    parts[k++] = escapedTag(name);
    parts[k++] = '=';
    parts[k++] = f[2 * i + 1] as string;
    sep = ',';
  }
  parts[k++] = ' ';
  parts[k++] = p.time;
  parts.length = k;
  // joined into one flat string: a line built with += would wait in its batch as a rope of every piece
  return parts.join('');
}

/** Milliseconds as nanosecond digits; a safe integer without BigInt (the same digits). */
function nanosText(ms: number): string {
  return Number.isSafeInteger(ms) && ms !== 0 ? `${ms}000000` : `${BigInt(ms) * 1_000_000n}`;
}

/** The field's value per the metric's datatype, as the client's Point writes it; or why line protocol cannot hold it. */
function fieldValue(metric: SparkplugMetric): string | { problem: string } {
  const v = metric.value;
  switch (metric.type) {
    case 'Int8':
    case 'Int16':
    case 'Int32':
    case 'UInt8':
    case 'UInt16':
    case 'UInt32':
    case 'DateTime':
      if (typeof v !== 'number') return { problem: `value ${String(v)} is not an integer` };
      if (Number.isNaN(v) || v <= -9223372036854776e3 || v >= 9223372036854776e3) return { problem: `${v} is beyond int64` };
      return `${Math.floor(v)}i`;
    case 'Int64':
    case 'UInt64': {
      if (typeof v !== 'bigint') return { problem: `value ${String(v)} is not an integer` };
      if (v < minInt64 || v > maxInt64) return { problem: `${v} is beyond int64, and InfluxDB 1.x has no unsigned fields` };
      return `${v}i`; // exact: the client's intField goes through a double
    }
    case 'Float':
    case 'Double':
      if (typeof v !== 'number' || !Number.isFinite(v)) return { problem: `value ${String(v)} is not a finite number (line protocol has no NaN or Infinity)` };
      return String(v);
    case 'Boolean':
      if (typeof v !== 'boolean') return { problem: `value ${String(v)} is not a boolean` };
      return v ? 'T' : 'F';
    case 'String':
    case 'Text':
    case 'UUID':
      if (typeof v !== 'string') return { problem: `value ${String(v)} is not a string` };
      if (unsafeString.test(v)) return { problem: 'a line break in a string value' };
      if (!v.isWellFormed()) return { problem: 'a lone UTF-16 surrogate in a string value' };
      return lineEscape.quoted(v);
    case 'Unknown':
      return { problem: 'a metric with no datatype in its birth or itself' };
    default:
      return { problem: `a ${metric.type} has no line-protocol field type (send it to Kafka, or add it to skipMetrics)` };
  }
}
