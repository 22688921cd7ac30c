// The routing-rules file: the router's part (subscriptions, match, continue, payload) and each
// sink's part of a route, taken from the sink registry. One zod schema gives the validation
// (with file and line, see yaml-file.ts) and the JSON schema for editors (`sluice rules schema`).
import { z } from 'zod';
import { sinkPlugins } from '../sinks/registry.ts';

const outputParts = Object.fromEntries(sinkPlugins.flatMap((p) => (p.route ? [[p.name, p.route.schema]] : [])));

export const route = z.strictObject({
  name: z
    .string()
    .regex(/^[A-Za-z0-9_.-]+$/, 'letters, digits, _ . - only (it is a metric label)')
    .describe("the route's name: unique, a metric label (letters, digits, _ . -)"),
  match: z.string().min(1).describe('topic pattern: {name} captures a level, + one level, # the rest'),
  continue: z.boolean().default(false).describe('false (default): first match wins; true: later matching routes also get the message (fan-out)'),
  payload: z
    .enum(['json', 'raw', 'sparkplug'])
    .default('json')
    .describe(
      'json: decoded and checked (UTF-8, JSON); raw: bytes forwarded as they are (no influx output); sparkplug: Sparkplug B v3 (spBv1.0/...), aliases named from the births, levels group, messageType, edgeNode, device',
    ),
  ...outputParts,
});

export const rulesFile = z.strictObject({
  subscriptions: z
    .array(
      z.strictObject({
        filter: z.string().min(1).describe('MQTT filter, subscribed as $share/<group>/<filter>'),
        qos: z
          .union([z.literal(0), z.literal(1), z.literal(2)], { error: 'qos is 0, 1 or 2' })
          .default(1)
          .describe('0, 1 or 2; QoS 2 filters are taken on a command connection of their own, exactly once into the audit log'),
      }),
    )
    .min(1)
    .describe('what the workers subscribe to, each as a shared subscription'),
  unmatched: z
    .enum(['dead-letter', 'drop'])
    .default('dead-letter')
    .describe('a received message no route matches: dead-letter it, or acknowledge and count it'),
  routes: z.array(route).min(1).describe('routes, tried in order: the first match wins unless it says continue'),
});

export type RulesFile = z.infer<typeof rulesFile>;
