// What the rules do with one message, as `rules test` prints it and its cases compare it: the
// outcome in one word, the routes, each sink's items in a printable form, the dead letter.
import { isUtf8 } from 'node:buffer';
import { filterMatches } from '../mapping/topic-pattern.ts';
import type { Message } from '../message.ts';
import type { Refusal } from '../outcome.ts';
import { encodeAll } from '../pipeline/encode.ts';
import type { RuleSet } from '../router/rule-set.ts';
import type { KafkaRecord } from '../sinks/kafka/kafka-record.ts';
import { ValueEncoder } from '../sinks/kafka/schema-registry/value-encoder.ts';
import { UsageError } from './command.ts';

/** What the rules do with one message: its outcome in a word, the routes, each sink's items (printable), the dead letter. */
export function evaluate(rules: RuleSet, message: Message): Report {
  const routed = rules.route(message);
  const { outputs, refusals } = encodeAll(routed, message, 'rules-test');
  const subscribed = rules.subscriptions.filter((s) => filterMatches(s.filter, message.topic));
  return {
    outcome: outcomeOf(routed.outcome, routed.matches.length, refusals.length),
    routes: routed.matches.map((m) => m.route),
    outputs: outputs.map((o) => ({ route: o.route, sink: o.sink, item: printable(o.item) })),
    deadLetters: refusals,
    ...(subscribed.length === 0
      ? {
          warning: `no subscription covers ${message.topic}: sluice would never receive it (subscriptions: ${rules.subscriptions.map((s) => s.filter).join(', ')})`,
        }
      : {}),
  };
}

export interface Report {
  readonly outcome: string;
  readonly routes: readonly string[];
  readonly outputs: ReadonlyArray<{ readonly route: string; readonly sink: string; readonly item: unknown }>;
  readonly deadLetters: readonly Refusal[];
  readonly warning?: string;
}

/** Routes a Sparkplug birth so alias-only data after it can be named; the refusal's words if it was not taken. */
export function routeBirth(rules: RuleSet, topic: string, payload: Buffer): string | undefined {
  const birth: Message = { topic, payload, qos: 1, retain: false, properties: {}, receivedAt: Date.now() };
  const r = encodeAll(rules.route(birth), birth, 'rules-test');
  return r.refusals.length > 0 ? r.refusals.map((x) => `${x.reason}: ${x.error}`).join('; ') : undefined;
}

/** What happens to the message, in one word: routed (written), dead-lettered, unmatched-dropped, expired. */
function outcomeOf(outcome: string, matched: number, refused: number): string {
  if (outcome !== 'routed') return outcome;
  if (refused > 0) return matched === 0 ? 'unmatched-dead-lettered' : 'dead-lettered';
  return 'routed';
}

export function base64Of(text: string, what: string): Buffer {
  const clean = text.replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(clean)) throw new UsageError(`${what} is not base64`);
  return Buffer.from(clean, 'base64');
}

/** A Kafka value as text (a fanned-out message's other elements too); the audit item as its record's fields. */
export function printable(item: unknown): unknown {
  if (item && typeof item === 'object' && 'value' in item && Buffer.isBuffer((item as { value: unknown }).value)) {
    const r = item as KafkaRecord;
    // a schema-encoded body (the registry's header comes at write time): bytes, as base64
    const text = (value: Buffer) => (r.schema instanceof ValueEncoder ? value.toString('base64') : value.toString('utf8'));
    return {
      ...r,
      value: text(r.value),
      ...(r.schema instanceof ValueEncoder ? { schema: { format: r.schema.format, subject: r.schema.subject } } : {}),
      ...(r.more ? { more: r.more.map((e) => ({ ...e, value: text(e.value) })) } : {}),
    };
  }
  if (item && typeof item === 'object' && 'message' in item) {
    const { message, levels } = item as { message: Message; levels: unknown };
    // the payload as text when it is UTF-8, else base64 (JSON.stringify would spell a Buffer out byte by byte)
    return {
      topic: message.topic,
      qos: message.qos,
      levels,
      ...(isUtf8(message.payload) ? { payload: message.payload.toString('utf8') } : { payloadBase64: message.payload.toString('base64') }),
    };
  }
  return item;
}
