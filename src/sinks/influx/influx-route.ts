// A route's influx part: measurement and tags from the levels (or JSON paths), fields from JSON
// paths, the time from the payload or the receive time; encoded as one line of line protocol,
// escaped by the client's own escapers, in the order its Point writes (tags and fields sorted by
// name), with the names escaped and sorted once at compile time. Levels and payloads are untrusted: a value that
// could change the structure of the line (a control character, a trailing backslash, a line
// break) is refused, never written.
import { z } from 'zod';
import { compileEachPath, compileJsonPath, type JsonPath, outerPath } from '../../mapping/json-path.ts';
import { numberText, parseKeepingNumbers } from '../../mapping/payload-text.ts';
import { RuleError } from '../../mapping/rule-error.ts';
import { compileTemplate, type Levels, type Template } from '../../mapping/template.ts';
import { toNanos } from '../../mapping/timestamp.ts';
import type { Message } from '../../message.ts';
import type { Refusal } from '../../outcome.ts';
import { KeptTopics } from '../../router/kept-topics.ts';
import type { Encoded, MatchInput, OutputCompiler, RouteContext, RouteOutput } from '../../router/route-output.ts';
import { lineEscape } from './influx-client.ts';
import { InfluxSparkplugMapping } from './influx-sparkplug.ts';
import { escapedOrUnsafe, maxInt64, minInt64, unsafeIdentifier, unsafeString } from './line-protocol.ts';

const fieldType = z.enum(['float', 'integer', 'boolean', 'string']);

export const fieldSpec = z.union([
  z.string().describe('a JSON path into the payload, e.g. "$.temperature"; the type follows the value'),
  z.strictObject({
    path: z.string().describe('JSON path into the payload'),
    type: fieldType.optional().describe('force a line-protocol type; a value that does not fit is dead-lettered'),
  }),
]);

export const influxRoute = z.strictObject({
  measurement: z.string().min(1).describe('measurement template, e.g. "{deviceType}"'),
  tags: z
    .union([
      z.array(z.string()).describe('level names, each becomes a tag of the same name'),
      z.record(z.string().min(1), z.string()).describe('tag name -> template over levels, or a JSON path'),
    ])
    .default([])
    .describe('tags of each point: level names, or name -> template / JSON path'),
  fields: z
    .record(z.string().min(1), fieldSpec)
    .refine((f) => Object.keys(f).length > 0, 'at least one field')
    .optional()
    .describe('field name -> JSON path (or {path, type}); json routes (a sparkplug route maps every metric instead)'),
  each: z
    .string()
    .regex(/\[\*\]$/, 'a JSON path to an array, ending in [*], e.g. "$.readings[*]"')
    .optional()
    .describe('fan-out: one point per element of this array; fields, time and path tags are read from the element ("$$." reads the whole payload)'),
  time: z.string().optional().describe('JSON path to the timestamp; absent: the time sluice received the message'),
  timeUnit: z
    .enum(['auto', 's', 'ms', 'us', 'ns'])
    .default('auto')
    .describe('unit of a numeric timestamp; auto guesses from its magnitude. ISO-8601 strings are always accepted'),
  field: z.string().optional().describe('sparkplug routes: the field name template per metric: {metric} (the default), {metricRest} and the metricLevels'),
  metricLevels: z
    .array(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/))
    .optional()
    .describe(
      'sparkplug routes: names for the leading "/"-separated parts of a metric name, usable in measurement, tags and field; {metricRest} is what follows them',
    ),
  skipMetrics: z
    .array(z.string().min(1))
    .default(['bdSeq', 'Node Control/*'])
    .describe('sparkplug routes: metric names not written ("prefix*" matches a prefix)'),
});

type InfluxRoute = z.infer<typeof influxRoute>;
type ValueSource = { readonly kind: 'template'; readonly template: Template } | { readonly kind: 'path'; readonly path: JsonPath; readonly outer: boolean };

interface CompiledField {
  readonly name: string;
  readonly path: JsonPath;
  /** Read from the whole payload ("$$."), not the element, under `each`. */
  readonly outer: boolean;
  readonly type: 'float' | 'integer' | 'boolean' | 'string' | undefined;
}

interface CompiledInflux {
  readonly measurement: Template;
  /** Sorted by name (as the client's Point writes them), each with its escaped ",name=". */
  readonly tags: ReadonlyArray<readonly [string, ValueSource, string]>;
  /** In the rules' order (the first bad one is the one reported). */
  readonly fields: readonly CompiledField[];
  /** The fields' indexes sorted by name, and each field's escaped "name=". */
  readonly fieldOrder: readonly number[];
  readonly fieldPrefixes: readonly string[];
  readonly time: JsonPath | undefined;
  readonly timeOuter: boolean;
  readonly timeUnit: 'auto' | 's' | 'ms' | 'us' | 'ns';
  /** The array fanned out (the path without its [*]). */
  readonly each: JsonPath | undefined;
  /**
   * The escaped measurement and tags by topic, when they come from the topic's levels alone (no
   * tag read from the payload): a fleet's devices each repeat theirs in every message.
   */
  readonly series: KeptTopics<string> | undefined;
}

class InfluxRouteOutput implements RouteOutput<string> {
  readonly sink = 'influx';
  readonly readsPayload = true;
  readonly readsMembers: readonly string[] | undefined;
  readonly phase = 1;
  private readonly route: string;
  private readonly compiled: CompiledInflux | undefined;
  private readonly sparkplug: InfluxSparkplugMapping | undefined;

  constructor(f: InfluxRoute, context: RouteContext) {
    const at = (...rest: Array<string | number>) => [...context.path, ...rest];
    const wrap = <T>(path: Array<string | number>, fn: () => T): T => {
      try {
        return fn();
      } catch (err) {
        if (err instanceof RuleError) throw err;
        throw new RuleError(path, (err as Error).message);
      }
    };
    if (context.payload === 'raw') throw new RuleError(context.path, 'a raw-payload route cannot map fields into influx');
    this.route = context.route;
    if (context.payload === 'sparkplug') {
      for (const key of ['fields', 'each', 'time'] as const) {
        if (f[key] !== undefined) throw new RuleError(at(key), `a sparkplug route maps every metric itself: no ${key} (use skipMetrics, metricLevels, field)`);
      }
      this.sparkplug = new InfluxSparkplugMapping(f, context);
      this.readsMembers = undefined;
      return;
    }
    for (const key of ['field', 'metricLevels'] as const) {
      if (f[key] !== undefined) throw new RuleError(at(key), `${key} is for sparkplug routes`);
    }
    if (f.fields === undefined) throw new RuleError(context.path, 'fields: at least one field (name -> JSON path)');
    const known = context.levels;
    const each = f.each === undefined ? undefined : wrap(at('each'), () => compileEachPath(f.each as string));
    const path = (at: Array<string | number>, source: string) => {
      const o = outerPath(source);
      if (o.outer && !each) throw new RuleError(at, '"$$." reads the whole payload under each; without each, write "$."');
      return { path: wrap(at, () => compileJsonPath(o.source)), outer: o.outer };
    };
    const valueSource = (at: Array<string | number>, s: string): ValueSource =>
      s.startsWith('$') ? { kind: 'path', ...path(at, s) } : { kind: 'template', template: wrap(at, () => compileTemplate(s, known)) };
    const tagList: Array<readonly [string, ValueSource]> = Array.isArray(f.tags)
      ? f.tags.map((name, j) => {
          if (!known.includes(name)) throw new RuleError(at('tags', j), `unknown level ${name}; known: ${known.join(', ')}`);
          return [name, { kind: 'template', template: compileTemplate(`{${name}}`, known) }] as const;
        })
      : Object.entries(f.tags).map(([name, s]) => [name, valueSource(at('tags', name), s)] as const);
    // a name given twice is one tag (the later), as it was on a Point
    const tags = [...new Map(tagList).entries()]
      .sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0))
      .map(([name, source]) => [name, source, `,${lineEscape.tag(name)}=`] as const);
    const time = f.time === undefined ? undefined : path(at('time'), f.time);
    const fields = Object.entries(f.fields).map(([name, spec]) => {
      const source = typeof spec === 'string' ? spec : spec.path;
      const p = path(typeof spec === 'string' ? at('fields', name) : at('fields', name, 'path'), source);
      return { name, path: p.path, outer: p.outer, type: typeof spec === 'string' ? undefined : spec.type };
    });
    this.compiled = {
      measurement: wrap(at('measurement'), () => compileTemplate(f.measurement, known)),
      tags,
      fields,
      fieldOrder: fields.map((_, i) => i).sort((x, y) => ((fields[x] as CompiledField).name < (fields[y] as CompiledField).name ? -1 : 1)),
      fieldPrefixes: fields.map((x) => `${lineEscape.tag(x.name)}=`),
      time: time?.path,
      timeOuter: time?.outer ?? false,
      timeUnit: f.timeUnit,
      each,
      series: tags.every(([, source]) => source.kind === 'template') ? new KeptTopics() : undefined,
    };
    // every path within a named member of the payload (no fan-out): the router builds only those
    const paths = [...tags.flatMap(([, source]) => (source.kind === 'path' ? [source.path] : [])), ...fields.map((x) => x.path), ...(time ? [time.path] : [])];
    this.readsMembers = each === undefined && paths.every((p) => p.member !== undefined) ? paths.map((p) => p.member as string) : undefined;
  }

  get keepsTopics(): boolean {
    return this.compiled?.series !== undefined;
  }

  encode(input: MatchInput): Encoded<string> {
    if (this.sparkplug) return this.sparkplug.encode(input);
    const f = this.compiled as CompiledInflux;
    const { payload, message, levels } = input;
    if (!f.each) {
      const r = buildLine(f, this.route, levels, payload, payload, message, -1);
      return 'line' in r ? { item: r.line, eventTimeMs: r.eventTimeMs } : { refusal: r.refusal };
    }
    const array = f.each.get(payload);
    if (!Array.isArray(array)) {
      return {
        refusal: {
          reason: 'mapping',
          stage: 'map',
          route: this.route,
          sink: 'influx',
          error: `each ${f.each.source}[*]: ${array === undefined ? 'not in the payload' : 'not an array'}`,
        },
      };
    }
    if (array.length === 0) return { skip: true };
    const lines = new Array<string>(array.length);
    let eventTimeMs: number | undefined;
    for (let i = 0; i < array.length; i++) {
      const r = buildLine(f, this.route, levels, array[i], payload, message, i);
      if ('refusal' in r) return { refusal: { ...r.refusal, error: `element ${i} of ${f.each.source}: ${r.refusal.error}` } };
      lines[i] = r.line;
      eventTimeMs ??= r.eventTimeMs;
    }
    return { item: lines.join('\n'), eventTimeMs };
  }
}

export const influxRouteCompiler: OutputCompiler = {
  key: 'influx',
  compile: (part, context) => new InfluxRouteOutput(part as InfluxRoute, context),
};

function mappingFailure(route: string, error: string): { refusal: Refusal } {
  return { refusal: { reason: 'mapping', stage: 'map', route, sink: 'influx', error } };
}

/** Zeros that make a whole number of each unit nanoseconds. */
const nanoZeros = { s: '000000000', ms: '000000', us: '000', ns: '' } as const;

/**
 * A positive whole-number timestamp as nanosecond digits and milliseconds, without BigInt (what
 * toNanos gives for it, checked in the tests); undefined for anything else, which toNanos reads.
 */
function wholeNanos(v: unknown, unit: 'auto' | 's' | 'ms' | 'us' | 'ns'): { text: string; ms: number } | undefined {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) return undefined;
  const u = unit !== 'auto' ? unit : v < 1e11 ? 's' : v < 1e14 ? 'ms' : v < 1e17 ? 'us' : 'ns';
  const ms = u === 's' ? v * 1000 : u === 'ms' ? v : u === 'us' ? Math.floor(v / 1000) : Math.floor(v / 1_000_000);
  return { text: `${v}${nanoZeros[u]}`, ms };
}

/**
 * A line's pieces, joined once at the end into one flat string: a line built with `+=` is a rope
 * (V8 ConsStrings) that allocates a node per piece and, while the line waits in its batch, keeps
 * every piece alive (~545 B for a 114-character line, ~150 B flat). Reused by every line (the
 * encoding is synchronous), as are the field values in the rules' order.
 */
const parts: string[] = [];
const fieldValues: Array<string | undefined> = [];
/** The measurement's and tags' pieces, joined into one flat string (kept by the cache, copied into every line). */
const seriesParts: string[] = [];

/** One point from `payload` (element `element` of `each`, -1 without it; `whole` is the message's payload). */
function buildLine(
  f: CompiledInflux,
  route: string,
  levels: Levels,
  payload: unknown,
  whole: unknown,
  message: Message,
  element: number,
): { line: string; eventTimeMs: number | undefined } | { refusal: Refusal } {
  let n = 0;
  const known = f.series?.get(message.topic);
  if (known !== undefined) {
    parts[n++] = known;
  } else {
    const series = seriesOf(f, route, levels, payload, whole);
    if (typeof series !== 'string') return series;
    f.series?.keep(message.topic, series);
    parts[n++] = series;
  }
  let fields = 0;
  // each field's written value, in the rules' order; written below in the names' order
  const values = fieldValues;
  for (let i = 0; i < f.fields.length; i++) values[i] = undefined;
  for (let i = 0; i < f.fields.length; i++) {
    const field = f.fields[i] as CompiledField;
    const v = field.path.get(field.outer ? whole : payload);
    if (v === undefined || v === null) continue;
    const type = field.type ?? (typeof v === 'number' ? 'float' : typeof v === 'boolean' ? 'boolean' : typeof v === 'string' ? 'string' : undefined);
    switch (type) {
      case 'float': {
        const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
        if (n === Infinity || n === -Infinity) {
          const written = typeof v === 'string' ? JSON.stringify(v) : (fieldSource(f, field, message, element) ?? String(v));
          return mappingFailure(route, `field ${field.name}: ${written} is out of range for a float field`);
        }
        if (!Number.isFinite(n)) return mappingFailure(route, `field ${field.name}: ${JSON.stringify(v)} is not a finite number`);
        values[i] = String(n);
        break;
      }
      case 'integer': {
        const n = typeof v === 'number' ? v : typeof v === 'string' && /^-?\d+$/.test(v) ? Number(v) : NaN;
        if (Number.isSafeInteger(n)) {
          values[i] = `${n}i`;
          break;
        }
        if (!Number.isInteger(n) && Number.isFinite(n)) return mappingFailure(route, `field ${field.name}: ${JSON.stringify(v)} is not an integer`);
        if (typeof v !== 'number' && typeof v !== 'string') return mappingFailure(route, `field ${field.name}: ${JSON.stringify(v)} is not an integer`);
        // beyond 2^53 a double has lost digits: write the payload's own digits, exactly, or say why not
        const digits = typeof v === 'string' ? v : (fieldSource(f, field, message, element) ?? String(v));
        if (!/^-?\d+$/.test(digits))
          return mappingFailure(route, `field ${field.name}: ${digits} is beyond 2^53 and not written as plain digits, so it cannot be written exactly`);
        const big = BigInt(digits);
        if (big < minInt64 || big > maxInt64) return mappingFailure(route, `field ${field.name}: ${digits} is out of range for an integer field (int64)`);
        values[i] = `${big}i`;
        break;
      }
      case 'boolean':
        if (typeof v !== 'boolean') return mappingFailure(route, `field ${field.name}: ${JSON.stringify(v)} is not a boolean`);
        values[i] = v ? 'T' : 'F';
        break;
      case 'string': {
        if (typeof v !== 'string') return mappingFailure(route, `field ${field.name}: ${JSON.stringify(v)} is not a string`);
        if (unsafeString.test(v)) return mappingFailure(route, `field ${field.name}: a line break in a string value`);
        if (!v.isWellFormed())
          return mappingFailure(route, `field ${field.name}: ${JSON.stringify(v)} has a lone UTF-16 surrogate (it would be written as U+FFFD)`);
        values[i] = lineEscape.quoted(v);
        break;
      }
      default:
        return mappingFailure(route, `field ${field.name} is an object or array`);
    }
    fields++;
  }
  if (fields === 0) return mappingFailure(route, 'none of the fields is in the payload');
  let sep = ' ';
  for (const i of f.fieldOrder) {
    const value = values[i];
    if (value === undefined) continue;
    parts[n++] = sep;
    parts[n++] = f.fieldPrefixes[i] as string;
    parts[n++] = value;
    sep = ',';
  }
  const raw = f.time?.get(f.timeOuter ? whole : payload);
  // absent: the receive time; present but not a timestamp: dead-lettered, never guessed
  parts[n++] = ' ';
  let eventTimeMs: number | undefined;
  if (raw === undefined || raw === null) {
    parts[n++] = String(message.receivedAt);
    parts[n++] = '000000';
  } else {
    const exact = wholeNanos(raw, f.timeUnit);
    if (exact !== undefined) {
      parts[n++] = exact.text;
      eventTimeMs = exact.ms;
    } else {
      const time = toNanos(raw, f.timeUnit);
      if (time === undefined) return mappingFailure(route, `time ${f.time?.source}: ${JSON.stringify(raw)} is not a timestamp`);
      parts[n++] = String(time);
      eventTimeMs = Number(time / 1_000_000n);
    }
  }
  parts.length = n;
  return { line: parts.join(''), eventTimeMs };
}

/** The escaped measurement and tags of a point: "measurement,tag=value,...", tags sorted by name. */
function seriesOf(f: CompiledInflux, route: string, levels: Levels, payload: unknown, whole: unknown): string | { refusal: Refusal } {
  const measurement = f.measurement.render(levels);
  if (measurement === '' || unsafeIdentifier.test(measurement)) return mappingFailure(route, `measurement ${JSON.stringify(measurement)} is empty or unsafe`);
  let n = 0;
  seriesParts[n++] = lineEscape.measurement(measurement);
  for (const [name, source, prefix] of f.tags) {
    const raw = source.kind === 'template' ? source.template.render(levels) : source.path.get(source.outer ? whole : payload);
    if (raw === undefined || raw === null || raw === '') continue; // line protocol has no empty tags
    if (typeof raw === 'object') return mappingFailure(route, `tag ${name} is an object or array`);
    const value = String(raw);
    const escaped = escapedOrUnsafe.test(value);
    if (escaped && unsafeIdentifier.test(value)) return mappingFailure(route, `tag ${name} has a control character or a trailing backslash`);
    if (!value.isWellFormed())
      return mappingFailure(route, `tag ${name}: ${JSON.stringify(value)} has a lone UTF-16 surrogate (it would be written as U+FFFD)`);
    seriesParts[n++] = prefix;
    seriesParts[n++] = escaped ? lineEscape.tag(value) : value;
  }
  seriesParts.length = n;
  return seriesParts.join('');
}

/** How the payload wrote a field's number, under each at its element (only on the rare paths that need it). */
function fieldSource(f: CompiledInflux, field: CompiledField, message: Message, element: number): string | undefined {
  const path = field.outer || element < 0 ? field.path : compileJsonPath(`${(f.each as JsonPath).source}[${element}]${field.path.source.slice(1)}`);
  return sourceText(message.payload, path);
}

/** How the payload wrote the number at `path`, read again (only on the rare paths that need it: it costs a second parse). */
function sourceText(payload: Buffer, path: JsonPath): string | undefined {
  try {
    return numberText(path.get(parseKeepingNumbers(payload)));
  } catch {
    return undefined;
  }
}
