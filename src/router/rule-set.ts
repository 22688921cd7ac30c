// The routing rules compiled once into a matcher and per-route builders. route() turns a
// message into Kafka records, line-protocol points and dead-letter notes. Topic levels and
// payloads are untrusted: nothing they contain can change the structure of what is written
// (an extra point, a header name, an illegal or device-made topic); what does not fit is
// dead-lettered with its reason.
import { Point } from '@influxdata/influxdb-client';
import type { FieldSpec, Route, RulesFile } from '../config/rules-schema.ts';
import type { Message } from '../message.ts';
import { compileJsonPath, type JsonPath } from './json-path.ts';
import type { DeadLetterNote, KafkaRecord, Routed } from './outputs.ts';
import { mqttHeaders, reservedHeader } from './kafka-headers.ts';
import { compileTemplate, type Levels, type Template } from './template.ts';
import { compilePattern, PatternTrie, validateFilter, type CompiledPattern } from './topic-pattern.ts';

/** A rule that does not compile, with the path into the rules file that is wrong. */
export class RuleError extends Error {
  override readonly name = 'RuleError';
  readonly path: ReadonlyArray<string | number>;
  constructor(path: ReadonlyArray<string | number>, message: string) {
    super(message);
    this.path = path;
  }
}

type ValueSource = { readonly kind: 'template'; readonly template: Template } | { readonly kind: 'path'; readonly path: JsonPath };

interface CompiledField {
  readonly name: string;
  readonly path: JsonPath;
  readonly type: 'float' | 'integer' | 'boolean' | 'string' | undefined;
}

interface CompiledRoute {
  readonly name: string;
  readonly pattern: CompiledPattern;
  readonly continue: boolean;
  readonly json: boolean;
  readonly audit: boolean;
  readonly kafka?: {
    readonly topic: Template;
    readonly key: Template | null;
    readonly headers: ReadonlyArray<readonly [string, Template]>;
  };
  readonly influx?: {
    readonly measurement: Template;
    readonly tags: ReadonlyArray<readonly [string, ValueSource]>;
    readonly fields: readonly CompiledField[];
    readonly time: JsonPath | undefined;
    readonly timeUnit: 'auto' | 's' | 'ms' | 'us' | 'ns';
  };
}

const kafkaTopicRe = /^[A-Za-z0-9._-]{1,249}$/;
/** Control characters break line protocol; a trailing backslash escapes the next separator. */
const unsafeIdentifier = /[\x00-\x1f\x7f]|\\$/;
const unsafeString = /[\n\r]/;
const utf8 = new TextDecoder('utf-8', { fatal: true });

export class RuleSet {
  readonly subscriptions: RulesFile['subscriptions'];
  readonly unmatched: RulesFile['unmatched'];
  readonly routeNames: readonly string[];
  readonly usesInflux: boolean;
  readonly usesKafka: boolean;
  readonly usesAudit: boolean;
  private readonly routes: readonly CompiledRoute[];
  private readonly trie = new PatternTrie();

  constructor(file: RulesFile) {
    this.subscriptions = file.subscriptions;
    this.unmatched = file.unmatched;
    // a filter the broker would refuse fails here, with its line, not at SUBACK
    file.subscriptions.forEach((sub, i) => {
      try {
        validateFilter(sub.filter);
      } catch (err) {
        throw new RuleError(['subscriptions', i, 'filter'], (err as Error).message);
      }
    });
    const seen = new Set<string>();
    this.routes = file.routes.map((r, i) => {
      if (seen.has(r.name)) throw new RuleError(['routes', i, 'name'], `duplicate route name "${r.name}"`);
      seen.add(r.name);
      const compiled = compileRoute(r, i);
      this.trie.add(compiled.pattern);
      return compiled;
    });
    this.routeNames = this.routes.map((r) => r.name);
    this.usesInflux = this.routes.some((r) => r.influx !== undefined);
    this.usesKafka = this.routes.some((r) => r.kafka !== undefined);
    this.usesAudit = this.routes.some((r) => r.audit);
  }

  route(message: Message, now = Date.now()): Routed {
    const expiry = message.properties.messageExpiryInterval;
    if (expiry !== undefined && message.receivedAt + expiry * 1000 < now) {
      return { outcome: 'expired', routes: [], kafka: [], influx: [], deadLetters: [] };
    }
    const levelsOfTopic = message.topic.split('/');
    const candidates = this.trie.match(message.topic, levelsOfTopic);
    if (candidates.length === 0) {
      return this.unmatched === 'drop'
        ? { outcome: 'unmatched-dropped', routes: [], kafka: [], influx: [], deadLetters: [] }
        : {
            outcome: 'routed', routes: [], kafka: [], influx: [],
            deadLetters: [{ reason: 'unmatched', stage: 'route', error: `no route matches topic "${message.topic}"` }],
          };
    }

    const routes: string[] = [];
    const kafka: Array<{ route: string; record: KafkaRecord }> = [];
    const influx: Array<{ route: string; line: string }> = [];
    const deadLetters: DeadLetterNote[] = [];
    let eventTimeMs: number | undefined;
    let audit: Routed['audit'];
    let decoded: { ok: true; value: unknown } | { ok: false; note: Omit<DeadLetterNote, 'route'> } | undefined;

    for (const id of candidates) {
      const route = this.routes[id] as CompiledRoute;
      routes.push(route.name);
      const levels: Record<string, string> = {};
      let emptyLevel: string | undefined;
      for (const c of route.pattern.captures) {
        const v = levelsOfTopic[c.index] as string;
        if (v === '') emptyLevel ??= c.name;
        levels[c.name] = v;
      }
      // recorded as it came, whatever its payload or levels: a command is evidence first
      if (route.audit) audit ??= { route: route.name, levels };
      if (emptyLevel !== undefined) {
        deadLetters.push({ reason: 'empty-level', stage: 'route', route: route.name, error: `level {${emptyLevel}} is empty in "${message.topic}"` });
      } else {
        let payload: unknown;
        let usable = true;
        if (route.json && (route.kafka || route.influx)) { // an audit-only route has nothing to decode for
          decoded ??= decodeJson(message.payload);
          if (decoded.ok) payload = decoded.value;
          else {
            deadLetters.push({ ...decoded.note, route: route.name });
            usable = false;
          }
        }
        if (usable) {
          if (route.kafka) {
            const r = buildKafkaRecord(route, levels, message);
            if ('record' in r) kafka.push({ route: route.name, record: r.record });
            else deadLetters.push(r.note);
          }
          if (route.influx) {
            const r = buildLine(route, levels, payload, message);
            if ('line' in r) {
              influx.push({ route: route.name, line: r.line });
              eventTimeMs ??= r.eventTimeMs;
            } else deadLetters.push(r.note);
          }
        }
      }
      if (!route.continue) break;
    }
    return {
      outcome: 'routed', routes, kafka, influx, deadLetters,
      ...(audit === undefined ? {} : { audit }),
      ...(eventTimeMs === undefined ? {} : { eventTimeMs }),
    };
  }
}

function compileRoute(r: Route, i: number): CompiledRoute {
  const at = (...rest: Array<string | number>) => ['routes', i, ...rest];
  const wrap = <T>(path: Array<string | number>, fn: () => T): T => {
    try {
      return fn();
    } catch (err) {
      if (err instanceof RuleError) throw err;
      throw new RuleError(path, (err as Error).message);
    }
  };
  const pattern = wrap(at('match'), () => compilePattern(r.match));
  const known = pattern.captures.map((c) => c.name);
  if (!r.kafka && !r.influx && !r.audit) throw new RuleError(at(), `route "${r.name}" has no output: give it kafka, influx, audit: true, or several`);
  if (r.payload === 'raw' && r.influx) throw new RuleError(at('influx'), 'a raw-payload route cannot map fields into influx');

  const valueSource = (path: Array<string | number>, s: string): ValueSource =>
    s.startsWith('$') ? { kind: 'path', path: wrap(path, () => compileJsonPath(s)) }
      : { kind: 'template', template: wrap(path, () => compileTemplate(s, known)) };

  const compiled: { -readonly [K in keyof CompiledRoute]: CompiledRoute[K] } = {
    name: r.name,
    pattern,
    continue: r.continue,
    json: r.payload === 'json',
    audit: r.audit,
  };
  if (r.kafka) {
    const k = r.kafka;
    const keySource = k.key === undefined ? (known.includes('deviceId') ? '{deviceId}' : null) : k.key;
    for (const name of Object.keys(k.headers)) {
      if (reservedHeader.test(name)) throw new RuleError(at('kafka', 'headers', name), `header names starting with mqtt- or sluice- are sluice's own`);
    }
    compiled.kafka = {
      topic: wrap(at('kafka', 'topic'), () => compileTemplate(k.topic, known)),
      key: keySource === null ? null : wrap(at('kafka', 'key'), () => compileTemplate(keySource, known)),
      headers: Object.entries(k.headers).map(([name, t]) => [name, wrap(at('kafka', 'headers', name), () => compileTemplate(t, known))] as const),
    };
    if (compiled.kafka.topic.uses.length === 0 && !kafkaTopicRe.test(k.topic)) {
      throw new RuleError(at('kafka', 'topic'), `"${k.topic}" is not a legal Kafka topic name ([A-Za-z0-9._-], at most 249)`);
    }
  }
  if (r.influx) {
    const f = r.influx;
    const tags: Array<readonly [string, ValueSource]> = Array.isArray(f.tags)
      ? f.tags.map((name, j) => {
          if (!known.includes(name)) throw new RuleError(at('influx', 'tags', j), `unknown level ${name}; known: ${known.join(', ')}`);
          return [name, { kind: 'template', template: compileTemplate(`{${name}}`, known) }] as const;
        })
      : Object.entries(f.tags).map(([name, s]) => [name, valueSource(at('influx', 'tags', name), s)] as const);
    compiled.influx = {
      measurement: wrap(at('influx', 'measurement'), () => compileTemplate(f.measurement, known)),
      tags,
      fields: Object.entries(f.fields).map(([name, spec]) => compileField(name, spec, at('influx', 'fields', name))),
      time: f.time === undefined ? undefined : wrap(at('influx', 'time'), () => compileJsonPath(f.time as string)),
      timeUnit: f.timeUnit,
    };
  }
  return compiled;
}

function compileField(name: string, spec: FieldSpec, path: Array<string | number>): CompiledField {
  const source = typeof spec === 'string' ? spec : spec.path;
  try {
    return { name, path: compileJsonPath(source), type: typeof spec === 'string' ? undefined : spec.type };
  } catch (err) {
    throw new RuleError(typeof spec === 'string' ? path : [...path, 'path'], (err as Error).message);
  }
}

function decodeJson(payload: Buffer): { ok: true; value: unknown } | { ok: false; note: Omit<DeadLetterNote, 'route'> } {
  let text: string;
  try {
    text = utf8.decode(payload);
  } catch {
    return { ok: false, note: { reason: 'invalid-utf8', stage: 'decode', error: 'payload is not valid UTF-8' } };
  }
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (err) {
    return { ok: false, note: { reason: 'invalid-json', stage: 'decode', error: (err as Error).message } };
  }
}

function buildKafkaRecord(route: CompiledRoute, levels: Levels, message: Message): { record: KafkaRecord } | { note: DeadLetterNote } {
  const k = route.kafka as NonNullable<CompiledRoute['kafka']>;
  const topic = k.topic.render(levels);
  if (!kafkaTopicRe.test(topic) || topic === '.' || topic === '..') {
    return { note: { reason: 'invalid-kafka-topic', stage: 'map', route: route.name, sink: 'kafka', error: `"${topic.slice(0, 300)}" is not a legal Kafka topic name` } };
  }
  const headers = mqttHeaders(message);
  for (const [name, t] of k.headers) headers[name] = t.render(levels);
  return {
    record: {
      topic,
      key: k.key === null ? null : k.key.render(levels),
      value: message.payload,
      headers,
      timestamp: String(message.receivedAt),
    },
  };
}

function buildLine(route: CompiledRoute, levels: Levels, payload: unknown, message: Message):
  { line: string; eventTimeMs: number | undefined } | { note: DeadLetterNote } {
  const f = route.influx as NonNullable<CompiledRoute['influx']>;
  const fail = (error: string): { note: DeadLetterNote } => ({ note: { reason: 'mapping', stage: 'map', route: route.name, sink: 'influx', error } });

  const measurement = f.measurement.render(levels);
  if (measurement === '' || unsafeIdentifier.test(measurement)) return fail(`measurement ${JSON.stringify(measurement)} is empty or unsafe`);
  const point = new Point(measurement);
  for (const [name, source] of f.tags) {
    const raw = source.kind === 'template' ? source.template.render(levels) : source.path.get(payload);
    if (raw === undefined || raw === null || raw === '') continue; // line protocol has no empty tags
    if (typeof raw === 'object') return fail(`tag ${name} is an object or array`);
    const value = String(raw);
    if (unsafeIdentifier.test(value)) return fail(`tag ${name} has a control character or a trailing backslash`);
    point.tag(name, value);
  }
  let fields = 0;
  for (const field of f.fields) {
    const v = field.path.get(payload);
    if (v === undefined || v === null) continue;
    const type = field.type ?? (typeof v === 'number' ? 'float' : typeof v === 'boolean' ? 'boolean' : typeof v === 'string' ? 'string' : undefined);
    switch (type) {
      case 'float': {
        const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
        if (!Number.isFinite(n)) return fail(`field ${field.name}: ${JSON.stringify(v)} is not a finite number`);
        point.floatField(field.name, n);
        break;
      }
      case 'integer': {
        const n = typeof v === 'number' ? v : typeof v === 'string' && /^-?\d+$/.test(v) ? Number(v) : NaN;
        if (!Number.isSafeInteger(n)) return fail(`field ${field.name}: ${JSON.stringify(v)} is not an integer`);
        point.intField(field.name, n);
        break;
      }
      case 'boolean':
        if (typeof v !== 'boolean') return fail(`field ${field.name}: ${JSON.stringify(v)} is not a boolean`);
        point.booleanField(field.name, v);
        break;
      case 'string': {
        if (typeof v !== 'string') return fail(`field ${field.name}: ${JSON.stringify(v)} is not a string`);
        if (unsafeString.test(v)) return fail(`field ${field.name}: a line break in a string value`);
        point.stringField(field.name, v);
        break;
      }
      default:
        return fail(`field ${field.name} is an object or array`);
    }
    fields++;
  }
  if (fields === 0) return fail('none of the fields is in the payload');
  const raw = f.time?.get(payload);
  // absent: the receive time; present but not a timestamp: dead-lettered, never guessed
  const time = raw === undefined || raw === null ? BigInt(message.receivedAt) * 1_000_000n : toNanos(raw, f.timeUnit);
  if (time === undefined) return fail(`time ${f.time?.source}: ${JSON.stringify(raw)} is not a timestamp`);
  point.timestamp(time.toString());
  return { line: point.toLineProtocol() as string, eventTimeMs: raw === undefined || raw === null ? undefined : Number(time / 1_000_000n) };
}

const unitNanos = { s: 1_000_000_000n, ms: 1_000_000n, us: 1_000n, ns: 1n } as const;

/** A payload timestamp in nanoseconds: a number (or digit string) in `unit`, or ISO-8601. */
export function toNanos(v: unknown, unit: 'auto' | 's' | 'ms' | 'us' | 'ns'): bigint | undefined {
  if (typeof v === 'string' && !/^-?\d+(\.\d+)?$/.test(v)) {
    const ms = Date.parse(v);
    return Number.isNaN(ms) ? undefined : BigInt(ms) * 1_000_000n;
  }
  const n = typeof v === 'number' ? v : typeof v === 'string' ? Number(v) : NaN;
  if (!Number.isFinite(n) || n < 0) return undefined;
  const u = unit !== 'auto' ? unit : n < 1e11 ? 's' : n < 1e14 ? 'ms' : n < 1e17 ? 'us' : 'ns';
  if (Number.isInteger(n) && typeof v === 'string') return BigInt(v) * unitNanos[u];
  if (Number.isInteger(n) && Number.isSafeInteger(n)) return BigInt(n) * unitNanos[u];
  // fractional (e.g. 1700000000.123 s): microsecond resolution is what a double holds here
  return (BigInt(Math.round(n * Number(unitNanos[u]) / 1000)) * 1000n);
}
