// A sparkplug route's influx part: each metric of a message becomes a field, of the line-protocol
// type its Sparkplug datatype maps to (64-bit integers written with all their digits), grouped
// into points by measurement, tags and time. Measurement, tags and the field name are templates
// over the topic's levels (group, edgeNode, device, ...) and the metric name's own levels
// (metricLevels). Commands (NCMD, DCMD) write no point. What line protocol cannot hold (a DataSet, bytes, an unsigned value past
// int64) is refused with the metric's name: the message is dead-lettered, never half-written.
import { RuleError } from '../../mapping/rule-error.ts';
import { compileTemplate, type Levels, type Template } from '../../mapping/template.ts';
import type { Refusal } from '../../outcome.ts';
import type { Encoded, MatchInput, RouteContext } from '../../router/route-output.ts';
import type { SparkplugMessage } from '../../sparkplug/sparkplug-message.ts';
import type { SparkplugMetric } from '../../sparkplug/sparkplug-payload.ts';
import { Point } from './influx-client.ts';
import { maxInt64, minInt64, unsafeIdentifier, unsafeString } from './line-protocol.ts';

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
    const fail = (error: string, reason = 'mapping'): { refusal: Refusal } => ({ refusal: { reason, stage: 'map', route: this.route, sink: 'influx', error } });
    const points = new Map<string | number, Point>();
    const fallbackMs = m.payload.timestamp ?? input.message.receivedAt;
    const flat: Array<{ name: string; metric: SparkplugMetric }> = [];
    for (const metric of m.payload.metrics) flatten(metric.name ?? '', metric, flat);
    // without metric levels in measurement and tags, every metric of the message shares them
    let shared: { measurement: string; tags: Array<readonly [string, string]> } | { refusal: Refusal } | undefined;
    for (const { name, metric } of flat) {
      // transient: the spec says not to historize it
      if (metric.isNull || metric.isTransient || metric.value === null || this.skipped(name)) continue;
      const levels = this.perMetric || !this.fieldIsName ? this.levelsOf(input.levels, name) : input.levels;
      const head = this.perMetric ? this.head(levels, name) : (shared ??= this.head(input.levels, name));
      if ('refusal' in head) return head;
      const field = this.fieldIsName ? name : this.field.render(levels);
      // the field name comes from the device: a trailing backslash would escape the "="
      if (field === '' || unsafeIdentifier.test(field) || !field.isWellFormed())
        return fail(`metric ${JSON.stringify(name)}: field name ${JSON.stringify(field)} is empty or unsafe`);
      const timeMs = metric.timestamp ?? fallbackMs;
      const key = this.perMetric ? `${head.measurement}\0${head.tags.map((t) => t.join('=')).join('\0')}\0${timeMs}` : timeMs;
      let point = points.get(key);
      if (!point) {
        point = new Point(head.measurement);
        for (const [tag, value] of head.tags) point.tag(tag, value);
        point.timestamp(`${BigInt(timeMs) * 1_000_000n}`);
        points.set(key, point);
      }
      const problem = setField(point, field, metric);
      if (problem)
        return fail(`metric ${JSON.stringify(name)} (${metric.type}): ${problem}`, problem.startsWith('a ') ? 'sparkplug-unsupported-type' : 'mapping');
    }
    if (points.size === 0) return { skip: true };
    // joined into one flat string: lines added with += would wait in the batch as a rope of every piece
    const lines: string[] = [];
    for (const p of points.values()) lines.push(p.toLineProtocol() as string);
    return { item: lines.join('\n'), eventTimeMs: m.payload.timestamp };
  }

  private skipped(name: string): boolean {
    for (const s of this.skip) if (s(name)) return true;
    return false;
  }

  /** Measurement and tags for these levels, or why they cannot be written. */
  private head(levels: Levels, metric: string): { measurement: string; tags: Array<readonly [string, string]> } | { refusal: Refusal } {
    const fail = (error: string): { refusal: Refusal } => ({ refusal: { reason: 'mapping', stage: 'map', route: this.route, sink: 'influx', error } });
    const measurement = this.measurement.render(levels);
    if (measurement === '' || unsafeIdentifier.test(measurement))
      return fail(`metric ${metric}: measurement ${JSON.stringify(measurement)} is empty or unsafe`);
    const tags: Array<readonly [string, string]> = [];
    for (const [tag, t] of this.tags) {
      const value = t.render(levels);
      if (value === '') continue;
      if (unsafeIdentifier.test(value) || !value.isWellFormed())
        return fail(`metric ${metric}: tag ${tag} has a control character, a trailing backslash or a lone UTF-16 surrogate`);
      tags.push([tag, value]);
    }
    return { measurement, tags };
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

/** Sets the field per the metric's datatype; says why not when line protocol cannot hold it. */
function setField(point: Point, field: string, metric: SparkplugMetric): string | undefined {
  const v = metric.value;
  switch (metric.type) {
    case 'Int8':
    case 'Int16':
    case 'Int32':
    case 'UInt8':
    case 'UInt16':
    case 'UInt32':
    case 'DateTime':
      if (typeof v !== 'number') return `value ${String(v)} is not an integer`;
      point.intField(field, v);
      return undefined;
    case 'Int64':
    case 'UInt64': {
      if (typeof v !== 'bigint') return `value ${String(v)} is not an integer`;
      if (v < minInt64 || v > maxInt64) return `${v} is beyond int64, and InfluxDB 1.x has no unsigned fields`;
      point.fields[field] = `${v}i`; // exact: the client's intField goes through a double
      return undefined;
    }
    case 'Float':
    case 'Double':
      if (typeof v !== 'number' || !Number.isFinite(v)) return `value ${String(v)} is not a finite number (line protocol has no NaN or Infinity)`;
      point.floatField(field, v);
      return undefined;
    case 'Boolean':
      if (typeof v !== 'boolean') return `value ${String(v)} is not a boolean`;
      point.booleanField(field, v);
      return undefined;
    case 'String':
    case 'Text':
    case 'UUID':
      if (typeof v !== 'string') return `value ${String(v)} is not a string`;
      if (unsafeString.test(v)) return 'a line break in a string value';
      if (!v.isWellFormed()) return 'a lone UTF-16 surrogate in a string value';
      point.stringField(field, v);
      return undefined;
    case 'Unknown':
      return 'a metric with no datatype in its birth or itself';
    default:
      return `a ${metric.type} has no line-protocol field type (send it to Kafka, or add it to skipMetrics)`;
  }
}
