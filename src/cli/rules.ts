// sluice rules check | test | schema: validate a rules file, show where a message would go
// (the items each sink would write, without writing them), print the JSON schema.
import { isUtf8 } from 'node:buffer';
import { loadConfig, loadRules } from '../config/load.ts';
import { jsonText, rulesJsonSchema } from '../config/reference.ts';
import type { Message } from '../message.ts';
import { encodeAll } from '../pipeline/encode.ts';
import type { RuleSet } from '../router/rule-set.ts';
import { filterMatches } from '../router/topic-pattern.ts';
import type { KafkaRecord } from '../sinks/kafka/kafka-record.ts';
import { ValueSchema } from '../sinks/kafka/schema-registry/value-schema.ts';
import { configFileOf, configHelp, configOptions, rulesOverrideOf, UsageError, type Command, type Parsed } from './command.ts';

function rulesOf(values: Parsed['values']): RuleSet {
  const override = rulesOverrideOf(values);
  // the secrets' shape is checked, their values not read: a production config is checked where its secrets are not
  return override !== undefined && values.config === undefined ? loadRules(override) : loadConfig(configFileOf(values), { rulesFile: override, resolveSecrets: false }).rules;
}

export const rulesCheckCommand: Command = {
  name: 'rules check',
  args: '[RULES_FILE]',
  summary: 'validate a rules file: the one named, else the config\'s (exit 1 with file:line on error)',
  options: { ...configOptions, strict: { type: 'boolean' } },
  help: { ...configHelp, strict: 'exit 1 on a warning too (a route no subscription covers, a route an earlier one shadows)' },
  async run({ values, positionals }) {
    if (positionals.length > 1) throw new UsageError(`rules check takes one rules file, got ${positionals.length}: ${positionals.join(' ')}`);
    const [file] = positionals;
    if (file !== undefined && values.rules !== undefined) throw new UsageError('name the rules file as the argument or with --rules, not both');
    const rules = rulesOf(file === undefined ? values : { ...values, rules: file });
    const warnings = ruleWarnings(rules);
    for (const w of warnings) process.stderr.write(`warning: ${w}\n`);
    process.stdout.write(`ok: ${rules.routeNames.length} route(s) (${rules.routeNames.join(', ')}), ${rules.subscriptions.length} subscription(s)${warnings.length ? `, ${warnings.length} warning(s)` : ''}\n`);
    return warnings.length > 0 && values.strict ? 1 : 0;
  },
};

/** What a rules file allows but its author surely did not mean: routes that can never receive a message. */
export function ruleWarnings(rules: RuleSet): string[] {
  return [
    ...rules.uncoveredRoutes().map((r) =>
      `route "${r.route}" (match ${r.match}) is covered by no subscription: it never receives a message (subscriptions: ${rules.subscriptions.map((s) => s.filter).join(', ')})`),
    ...rules.shadowedRoutes().map((r) =>
      `route "${r.route}" (match ${r.match}) is shadowed by route "${r.by}" before it, which takes every topic it matches (continue: false): it never receives a message`),
  ];
}

export const rulesTestCommand: Command = {
  name: 'rules test',
  args: 'TOPIC PAYLOAD',
  summary: 'show where a message would go, and what each sink would write, without sending it',
  notes: 'outcome: routed, dead-lettered, unmatched-dead-lettered, unmatched-dropped or expired; a warning when no subscription covers the topic.\nexit codes: 0 routed (written, no dead letter), 1 anything else (dead-lettered, dropped, or never received), 2 usage',
  options: { ...configOptions, qos: { type: 'string' }, property: { type: 'string', multiple: true }, base64: { type: 'boolean' }, birth: { type: 'string', multiple: true } },
  help: {
    ...configHelp, qos: 'the QoS it arrives with (default 1)', property: 'a user property, K=V',
    base64: 'PAYLOAD is base64 (a Sparkplug B payload, any binary)',
    birth: 'TOPIC=BASE64: a Sparkplug birth routed first, so alias-only data can be named (repeatable)',
  },
  async run({ values, positionals }) {
    const [topic, payload] = positionals;
    if (topic === undefined || payload === undefined) throw new UsageError('rules test needs TOPIC and PAYLOAD');
    const bytes = values.base64 ? base64Of(payload, 'PAYLOAD') : Buffer.from(payload);
    const userProperties: Record<string, string> = {};
    for (const p of (values.property as string[] | undefined) ?? []) {
      const eq = p.indexOf('=');
      if (eq < 1) throw new UsageError(`--property takes K=V, got "${p}"`);
      userProperties[p.slice(0, eq)] = p.slice(eq + 1);
    }
    const qos = values.qos === undefined ? 1 : Number(values.qos);
    if (qos !== 0 && qos !== 1 && qos !== 2) throw new UsageError(`--qos takes 0, 1 or 2, got "${String(values.qos)}"`);
    const rules = rulesOf(values);
    for (const b of (values.birth as string[] | undefined) ?? []) {
      const eq = b.indexOf('=');
      if (eq < 1) throw new UsageError(`--birth takes TOPIC=BASE64, got "${b.slice(0, 80)}"`);
      const birth: Message = { topic: b.slice(0, eq), payload: base64Of(b.slice(eq + 1), `--birth ${b.slice(0, eq)}`), qos: 1, retain: false, properties: {}, receivedAt: Date.now() };
      const r = encodeAll(rules.route(birth), birth, 'rules-test');
      if (r.refusals.length > 0) throw new UsageError(`--birth ${birth.topic}: ${r.refusals.map((x) => `${x.reason}: ${x.error}`).join('; ')}`);
    }
    const message: Message = {
      topic,
      payload: bytes,
      qos,
      retain: false,
      properties: Object.keys(userProperties).length ? { userProperties } : {},
      receivedAt: Date.now(),
    };
    const routed = rules.route(message);
    const { outputs, refusals } = encodeAll(routed, message, 'rules-test');
    const subscribed = rules.subscriptions.filter((s) => filterMatches(s.filter, topic));
    const report = {
      outcome: outcomeOf(routed.outcome, routed.matches.length, refusals.length),
      routes: routed.matches.map((m) => m.route),
      outputs: outputs.map((o) => ({ route: o.route, sink: o.sink, item: printable(o.item) })),
      deadLetters: refusals,
      ...(subscribed.length === 0 ? { warning: `no subscription covers ${topic}: sluice would never receive it (subscriptions: ${rules.subscriptions.map((s) => s.filter).join(', ')})` } : {}),
    };
    process.stdout.write(`${JSON.stringify(report, (_k, v: unknown) => (Buffer.isBuffer(v) ? v.toString('base64') : v), 2)}\n`);
    // a script can ask "would this message be written?": only a clean route answers yes
    return report.outcome === 'routed' && subscribed.length > 0 ? 0 : 1;
  },
};

/** What happens to the message, in one word: routed (written), dead-lettered, unmatched-dropped, expired. */
function outcomeOf(outcome: string, matched: number, refused: number): string {
  if (outcome !== 'routed') return outcome;
  if (refused > 0) return matched === 0 ? 'unmatched-dead-lettered' : 'dead-lettered';
  return 'routed';
}

function base64Of(text: string, what: string): Buffer {
  const clean = text.replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(clean)) throw new UsageError(`${what} is not base64`);
  return Buffer.from(clean, 'base64');
}

/** A Kafka value as text (a fanned-out message's other elements too); the audit item as its record's fields. */
function printable(item: unknown): unknown {
  if (item && typeof item === 'object' && 'value' in item && Buffer.isBuffer((item as { value: unknown }).value)) {
    const r = item as KafkaRecord;
    // a schema-encoded body (the registry's header comes at write time): bytes, as base64
    const text = (value: Buffer) => r.schema instanceof ValueSchema ? value.toString('base64') : value.toString('utf8');
    return {
      ...r, value: text(r.value),
      ...(r.schema instanceof ValueSchema ? { schema: { format: r.schema.format, subject: r.schema.subject } } : {}),
      ...(r.more ? { more: r.more.map((e) => ({ ...e, value: text(e.value) })) } : {}),
    };
  }
  if (item && typeof item === 'object' && 'message' in item) {
    const { message, levels } = item as { message: Message; levels: unknown };
    // the payload as text when it is UTF-8, else base64 (JSON.stringify would spell a Buffer out byte by byte)
    return { topic: message.topic, qos: message.qos, levels, ...(isUtf8(message.payload) ? { payload: message.payload.toString('utf8') } : { payloadBase64: message.payload.toString('base64') }) };
  }
  return item;
}

export const rulesSchemaCommand: Command = {
  name: 'rules schema',
  summary: 'the JSON schema of the rules file (for editors)',
  options: {},
  help: {},
  async run() {
    process.stdout.write(jsonText(rulesJsonSchema()));
    return 0;
  },
};
