// The routing-rules file: one zod schema gives the TypeScript types, the validation (with file
// and line, see yaml-file.ts) and the JSON schema for editors (`sluice rules schema`).
import { z } from 'zod';

const fieldType = z.enum(['float', 'integer', 'boolean', 'string']);

export const fieldSpec = z.union([
  z.string().describe('a JSON path into the payload, e.g. "$.temperature"; the type follows the value'),
  z.strictObject({
    path: z.string().describe('JSON path into the payload'),
    type: fieldType.optional().describe('force a line-protocol type; a value that does not fit is dead-lettered'),
  }),
]);

export const kafkaOutput = z.strictObject({
  topic: z.string().min(1).describe('Kafka topic template, e.g. "telemetry.{site}"'),
  key: z.string().nullable().optional()
    .describe('record key template; default "{deviceId}" when the pattern captures deviceId, else no key'),
  headers: z.record(z.string().min(1), z.string()).default({})
    .describe('extra headers: name -> template over levels'),
});

export const influxOutput = z.strictObject({
  measurement: z.string().min(1).describe('measurement template, e.g. "{deviceType}"'),
  tags: z.union([
    z.array(z.string()).describe('level names, each becomes a tag of the same name'),
    z.record(z.string().min(1), z.string()).describe('tag name -> template over levels, or a JSON path'),
  ]).default([]),
  fields: z.record(z.string().min(1), fieldSpec).refine((f) => Object.keys(f).length > 0, 'at least one field')
    .describe('field name -> JSON path (or {path, type})'),
  time: z.string().optional().describe('JSON path to the timestamp; absent: the time sluice received the message'),
  timeUnit: z.enum(['auto', 's', 'ms', 'us', 'ns']).default('auto')
    .describe('unit of a numeric timestamp; auto guesses from its magnitude. ISO-8601 strings are always accepted'),
});

export const route = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9_.-]+$/, 'letters, digits, _ . - only (it is a metric label)'),
  match: z.string().min(1).describe('topic pattern: {name} captures a level, + one level, # the rest'),
  continue: z.boolean().default(false)
    .describe('false (default): first match wins; true: later matching routes also get the message (fan-out)'),
  payload: z.enum(['json', 'raw']).default('json')
    .describe('json: decoded and checked (UTF-8, JSON); raw: bytes forwarded as they are (no influx output)'),
  audit: z.boolean().default(false)
    .describe('record every message of this route in the audit log (exactly once for QoS 2 subscriptions), before any other output'),
  kafka: kafkaOutput.optional(),
  influx: influxOutput.optional(),
});

export const rulesFile = z.strictObject({
  subscriptions: z.array(z.strictObject({
    filter: z.string().min(1).describe('MQTT filter, subscribed as $share/<group>/<filter>'),
    qos: z.union([z.literal(0), z.literal(1), z.literal(2)]).default(1)
      .describe('0, 1 or 2; QoS 2 filters are taken on a command connection of their own, exactly once into the audit log'),
  })).min(1),
  unmatched: z.enum(['dead-letter', 'drop']).default('dead-letter')
    .describe('a received message no route matches: dead-letter it, or acknowledge and count it'),
  routes: z.array(route).min(1),
});

export type RulesFile = z.infer<typeof rulesFile>;
export type Route = z.infer<typeof route>;
export type FieldSpec = z.infer<typeof fieldSpec>;
