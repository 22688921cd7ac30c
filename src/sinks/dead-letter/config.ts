// The deadLetter section of the service config: where what the rules or a sink refuse goes.
// Kafka (deadLetter.topic, over the kafka section's connection), a JSON-lines file on a volume
// (a deployment without Kafka), or nowhere: hold the message unacknowledged and report it, so
// the broker keeps it until an operator acts.
import { z } from 'zod';

export const deadLetterDestinations = ['kafka', 'file', 'hold'] as const;

export const deadLetterConfig = z
  .strictObject({
    to: z
      .enum(deadLetterDestinations)
      .default('kafka')
      .describe(
        'kafka: the topic deadLetter.topic; file: JSON lines appended to path, fsync\'d per batch (no Kafka needed); hold: write nowhere: a refused message stays unacknowledged (the broker keeps it and the acks behind it), sluice_sink_healthy{sink="dead-letter"} reads 0 and /readyz names it until a restart with another destination',
      ),
    topic: z
      .string()
      .regex(/^[A-Za-z0-9._-]{1,249}$/)
      .default('sluice.dead-letter')
      .describe(
        "the Kafka topic when to: kafka, written with the kafka section's connection settings; must exist (or kafka.createTopics.enabled): sluice waits at start, not ready, until it does",
      ),
    path: z.string().min(1).optional().describe('the JSON-lines file when to: file, relative to this file (on a volume in a container)'),
    batch: z
      .strictObject({
        maxLines: z.int().min(1).default(1000).describe('lines per write + fdatasync at most (to: file)'),
        lingerMs: z.int().min(0).default(20).describe('how long a batch waits to fill (to: file); it goes at once when an ack window is full'),
      })
      .prefault({})
      .describe('batching of appends (to: file)'),
  })
  .superRefine((d, ctx) => {
    if (d.to === 'file' && d.path === undefined) ctx.addIssue({ code: 'custom', path: ['path'], message: 'to: file needs a path (the JSON-lines file)' });
    if (d.to !== 'file' && d.path !== undefined) ctx.addIssue({ code: 'custom', path: ['path'], message: `path is for to: file (to is ${d.to})` });
  })
  .prefault({})
  .describe('where refused messages go (docs/rules.md, Dead letters); kafka by default');

export type DeadLetterConfig = z.infer<typeof deadLetterConfig>;
