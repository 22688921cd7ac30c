// A route's kafka part: topic, key and header templates over the named levels, compiled once.
// A record carries the payload as it came (or, per `value`, a Sparkplug message as JSON, or a
// body encoded with a registry schema) and the message's MQTT side as headers
// (kafka-headers.ts); annotations of phase 0 (the audit record's sequence number) join them.
import { resolve } from 'node:path';
import { z } from 'zod';
import { compileEachPath, compileJsonPath, type JsonPath, outerPath } from '../../mapping/json-path.ts';
import { parseKeepingNumbers } from '../../mapping/payload-text.ts';
import { RuleError } from '../../mapping/rule-error.ts';
import { compileTemplate, type Template } from '../../mapping/template.ts';
import { toNanos } from '../../mapping/timestamp.ts';
import type { Encoded, MatchInput, OutputCompiler, RouteContext, RouteOutput } from '../../router/route-output.ts';
import { type SparkplugMessage, sparkplugJson } from '../../sparkplug/sparkplug-message.ts';
import { mqttHeaders, reservedHeader } from './kafka-headers.ts';
import { type KafkaElement, type KafkaHeaderValue, type KafkaRecord, kafkaTopicRe } from './kafka-record.ts';
import { ValueEncoder, valueFormats } from './schema-registry/value-encoder.ts';

export const kafkaRoute = z.strictObject({
  topic: z.string().min(1).describe('Kafka topic template, e.g. "telemetry.{site}"'),
  key: z
    .string()
    .nullable()
    .optional()
    .describe(
      'record key template; default "{deviceId}" when the pattern captures deviceId ("{group}/{edgeNode}" on sparkplug routes), else no key: keyless records are spread over the topic\'s partitions (in turn; with librdkafka a random partition for some milliseconds at a time, its sticky partitioner)',
    ),
  headers: z.record(z.string().min(1), z.string()).default({}).describe('extra headers: name -> template over levels'),
  timestamp: z
    .string()
    .optional()
    .describe(
      'JSON path to the record timestamp in the payload, e.g. "$.ts" (json routes; under each, in the element, "$$." the whole payload); absent, missing or not a timestamp: the time sluice received the message, and the header sluice-timestamp says which',
    ),
  each: z
    .string()
    .regex(/\[\*\]$/, 'a JSON path to an array, ending in [*], e.g. "$.readings[*]"')
    .optional()
    .describe(
      'array fan-out (json routes): one record per element of this array, the element as its value (numbers with the digits the payload wrote), header sluice-element its index; the records of one message are written together or dead-lettered together',
    ),
  timestampUnit: z
    .enum(['auto', 's', 'ms', 'us', 'ns'])
    .default('auto')
    .describe('unit of a numeric payload timestamp; auto guesses from its magnitude. ISO-8601 strings are always accepted'),
  value: z
    .union([
      z.enum(['payload', 'json']),
      z.strictObject({
        format: z
          .enum(valueFormats)
          .describe('avro, protobuf or json-schema: the payload checked against the schema and written in the Confluent wire format (magic byte, schema id)'),
        schema: z.string().min(1).describe('the schema file (.avsc, .proto, .json), relative to the rules file'),
        subject: z
          .string()
          .min(1)
          .optional()
          .describe('the registry subject; default "<topic>-value" (TopicNameStrategy), which needs a topic without {levels}'),
        message: z.string().min(1).optional().describe("protobuf: the message type, e.g. sluice.Reading; default the file's first message"),
      }),
    ])
    .optional()
    .describe(
      'the record value: payload (the bytes as they came; the default for json and raw routes), json (sparkplug routes, the default there: the message as JSON, metric names resolved), or {format, schema} (json routes: encoded through kafka.schemaRegistry; a payload that does not fit is dead-lettered, schema-mismatch)',
    ),
});

type KafkaRoute = z.infer<typeof kafkaRoute>;

function legalTopic(topic: string): boolean {
  return kafkaTopicRe.test(topic) && topic !== '.' && topic !== '..';
}

class KafkaRouteOutput implements RouteOutput<KafkaRecord> {
  readonly sink = 'kafka';
  /** A json route checks its payload before forwarding it; every route needs its levels. */
  readonly readsPayload = true;
  /** It reads the parsed payload only for a schema, a payload timestamp or a fan-out; else the bytes go as they came. */
  readonly readsDecoded: boolean;
  readonly readsMembers: readonly string[] | undefined;
  readonly phase = 1;
  private readonly route: string;
  private readonly topic: Template;
  readonly destination: string;
  private readonly key: Template | null;
  private readonly headers: ReadonlyArray<readonly [string, Template]>;
  /** The topic template when it names levels (its topics share a budget), else undefined. */
  private readonly template: string | undefined;
  private readonly timestamp: JsonPath | undefined;
  /** Under each, "$$." reads the timestamp from the whole payload, not the element. */
  private readonly timestampOuter: boolean = false;
  /** The array fanned out (the path without its [*]). */
  private readonly each: JsonPath | undefined;
  private readonly timestampUnit: KafkaRoute['timestampUnit'];
  /** Sparkplug as JSON (names resolved), else the payload as it came. */
  private readonly sparkplugJson: boolean;
  private readonly sparkplug: boolean;
  private readonly schema: ValueEncoder | undefined;
  readonly requires: readonly string[] | undefined;

  constructor(part: KafkaRoute, context: RouteContext) {
    const at = (...rest: Array<string | number>) => [...context.path, ...rest];
    const compile = (path: Array<string | number>, source: string) => {
      try {
        return compileTemplate(source, context.levels);
      } catch (err) {
        throw new RuleError(path, (err as Error).message);
      }
    };
    this.route = context.route;
    // Sparkplug: an edge node's messages keep their order in one partition
    const keySource =
      part.key !== undefined ? part.key : context.payload === 'sparkplug' ? '{group}/{edgeNode}' : context.levels.includes('deviceId') ? '{deviceId}' : null;
    for (const name of Object.keys(part.headers)) {
      if (reservedHeader.test(name)) throw new RuleError(at('headers', name), `header names starting with mqtt- or sluice- are sluice's own`);
    }
    this.topic = compile(at('topic'), part.topic);
    this.destination = part.topic;
    if (this.topic.uses.length === 0 && !legalTopic(part.topic)) {
      throw new RuleError(at('topic'), `"${part.topic}" is not a legal Kafka topic name ([A-Za-z0-9._-], at most 249, not . or ..)`);
    }
    this.template = this.topic.uses.length > 0 ? part.topic : undefined;
    this.key = keySource === null ? null : compile(at('key'), keySource);
    this.headers = Object.entries(part.headers).map(([name, t]) => [name, compile(at('headers', name), t)] as const);
    this.timestampUnit = part.timestampUnit;
    this.sparkplug = context.payload === 'sparkplug';
    if (part.value === 'json' && !this.sparkplug)
      throw new RuleError(at('value'), 'value: json is for sparkplug routes (a json route forwards its payload as it came)');
    this.sparkplugJson = this.sparkplug && part.value !== 'payload';
    if (typeof part.value === 'object') {
      if (context.payload !== 'json') throw new RuleError(at('value'), 'a value schema encodes a JSON payload: it needs payload: json');
      if (part.value.subject === undefined && this.topic.uses.length > 0)
        throw new RuleError(at('value', 'subject'), 'a topic with {levels} names many topics: give the subject');
      const file = resolve(context.baseDir, part.value.schema);
      try {
        this.schema = new ValueEncoder({ format: part.value.format, file, subject: part.value.subject ?? `${part.topic}-value`, message: part.value.message });
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        throw new RuleError(at('value', 'schema'), code ? `cannot read the schema file ${file} (${code})` : `${file}: ${(err as Error).message}`);
      }
      this.requires = ['schemaRegistry'];
    }
    if (part.each !== undefined) {
      if (context.payload !== 'json') throw new RuleError(at('each'), 'array fan-out reads a JSON payload: it needs payload: json');
      try {
        this.each = compileEachPath(part.each);
      } catch (err) {
        throw new RuleError(at('each'), (err as Error).message);
      }
    }
    if (part.timestamp !== undefined) {
      if (context.payload !== 'json') throw new RuleError(at('timestamp'), 'a payload timestamp needs payload: json');
      const o = outerPath(part.timestamp);
      this.timestampOuter = o.outer;
      if (o.outer && !this.each) throw new RuleError(at('timestamp'), '"$$." reads the whole payload under each; without each, write "$."');
      try {
        this.timestamp = compileJsonPath(o.source);
      } catch (err) {
        throw new RuleError(at('timestamp'), (err as Error).message);
      }
    }
    this.readsDecoded = this.schema !== undefined || this.each !== undefined || this.timestamp !== undefined || this.sparkplug;
    // a payload timestamp alone: the router builds only its member
    const timeOnly = this.schema === undefined && this.each === undefined && !this.sparkplug;
    this.readsMembers = timeOnly && this.timestamp?.member !== undefined ? [this.timestamp.member] : undefined;
  }

  encode(input: MatchInput): Encoded<KafkaRecord> {
    const { levels, message } = input;
    const topic = this.topic.render(levels);
    // a topic without {levels} was checked once, when the rules were loaded
    if (this.template !== undefined && !legalTopic(topic)) {
      return {
        refusal: {
          reason: 'invalid-kafka-topic',
          stage: 'map',
          route: this.route,
          sink: 'kafka',
          error: `"${topic.slice(0, 300)}" is not a legal Kafka topic name`,
        },
      };
    }
    const headers = mqttHeaders(message);
    for (const [name, t] of this.headers) headers[name] = t.render(levels);
    if (input.annotations) Object.assign(headers, input.annotations);
    const key = this.key === null ? null : this.key.render(levels);
    if (this.each) return this.fanOut(input, topic, key, headers);
    let timestamp = message.receivedAt;
    let eventTimeMs: number | undefined;
    let value = message.payload;
    if (this.schema) {
      const encoded = this.schema.encode(input.payload, message.payload);
      if ('error' in encoded) return { refusal: { reason: 'schema-mismatch', stage: 'map', route: this.route, sink: 'kafka', error: encoded.error } };
      value = encoded.body;
    }
    if (this.sparkplug) {
      const m = input.payload as SparkplugMessage;
      if (this.sparkplugJson) value = Buffer.from(sparkplugJson(m));
      // a device clock at 0 (unset) is no time: the receive time then
      const own = m.payload.timestamp !== undefined && m.payload.timestamp > 0;
      if (own) timestamp = eventTimeMs = m.payload.timestamp as number;
      headers['sluice-timestamp'] = own ? 'payload' : 'received';
    } else if (this.timestamp !== undefined) {
      eventTimeMs = this.payloadTime(input.payload);
      if (eventTimeMs !== undefined) timestamp = eventTimeMs;
      headers['sluice-timestamp'] = eventTimeMs === undefined ? 'received' : 'payload';
    }
    const item = this.record(topic, key, value, headers, timestamp, undefined);
    return eventTimeMs === undefined ? { item } : { item, eventTimeMs };
  }

  /** The payload's time at the timestamp path, epoch ms, or undefined. */
  private payloadTime(from: unknown): number | undefined {
    const raw = (this.timestamp as JsonPath).get(from);
    const nanos = raw === undefined || raw === null ? undefined : toNanos(raw, this.timestampUnit);
    return nanos === undefined ? undefined : Number(nanos / 1_000_000n);
  }

  private record(
    topic: string,
    key: string | null,
    value: Buffer,
    headers: Record<string, KafkaHeaderValue>,
    timestamp: number,
    more: readonly KafkaElement[] | undefined,
  ): KafkaRecord {
    // only a templated topic carries its template (its topic budget)
    const item: KafkaRecord =
      this.template === undefined
        ? this.schema
          ? { topic, key, value, headers, timestamp, schema: this.schema }
          : { topic, key, value, headers, timestamp }
        : this.schema
          ? { topic, key, value, headers, timestamp, template: this.template, schema: this.schema }
          : { topic, key, value, headers, timestamp, template: this.template };
    return more === undefined ? item : { ...item, more };
  }

  /** kafka.each: one record per element, all in one item; one element that cannot be written refuses the message whole. */
  private fanOut(input: MatchInput, topic: string, key: string | null, headers: Record<string, KafkaHeaderValue>): Encoded<KafkaRecord> {
    const each = this.each as JsonPath;
    const array = each.get(input.payload);
    if (!Array.isArray(array)) {
      return {
        refusal: {
          reason: 'mapping',
          stage: 'map',
          route: this.route,
          sink: 'kafka',
          error: `each ${each.source}[*]: ${array === undefined ? 'not in the payload' : 'not an array'}`,
        },
      };
    }
    if (array.length === 0) return { skip: true };
    // Avro and Protobuf encode the decoded element; the others take its JSON text, digits kept
    const texts = this.schema && this.schema.format !== 'json-schema' ? undefined : elementTexts(input.message.payload, each);
    const elements: KafkaElement[] = new Array(array.length);
    let eventTimeMs: number | undefined;
    for (let i = 0; i < array.length; i++) {
      let value: Buffer = texts ? Buffer.from(texts[i] as string) : Buffer.alloc(0);
      if (this.schema) {
        const encoded = this.schema.encode(array[i], value);
        if ('error' in encoded)
          return {
            refusal: { reason: 'schema-mismatch', stage: 'map', route: this.route, sink: 'kafka', error: `element ${i} of ${each.source}: ${encoded.error}` },
          };
        value = encoded.body;
      }
      const own: Record<string, KafkaHeaderValue> = { ...headers, 'sluice-element': String(i) };
      let timestamp = input.message.receivedAt;
      if (this.timestamp !== undefined) {
        const t = this.payloadTime(this.timestampOuter ? input.payload : array[i]);
        if (t !== undefined) timestamp = t;
        eventTimeMs ??= t;
        own['sluice-timestamp'] = t === undefined ? 'received' : 'payload';
      }
      elements[i] = { value, timestamp, headers: own };
    }
    const first = elements[0] as KafkaElement;
    const item = this.record(topic, key, first.value, first.headers, first.timestamp, elements.length > 1 ? elements.slice(1) : undefined);
    return eventTimeMs === undefined ? { item } : { item, eventTimeMs };
  }
}

/** Each element of the array at `each` as JSON text, its numbers as the payload wrote them (a double would round an int64 past 2^53). */
function elementTexts(payload: Buffer, each: JsonPath): string[] {
  return (each.get(parseKeepingNumbers(payload)) as unknown[]).map((e) => JSON.stringify(e));
}

export const kafkaRouteCompiler: OutputCompiler = {
  key: 'kafka',
  compile: (part, context) => new KafkaRouteOutput(part as KafkaRoute, context),
};
