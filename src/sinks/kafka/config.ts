// The kafka section of the service config: connection, batching, topic creation, and the
// dead-letter topic (written by the dead-letter sink over the same connection settings).
import type { SASLOptions } from 'kafkajs';
import { z } from 'zod';
import { hostPortProblem } from '../../addresses.ts';
import { resolveSecret, secretRef } from '../../secrets.ts';

export const kafkaConfig = z.strictObject({
  brokers: z.array(z.string().min(1).superRefine((v, ctx) => {
    const problem = hostPortProblem(v);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  })).min(1).default(['127.0.0.1:29092']).describe('host:port of each bootstrap broker'),
  clientId: z.string().default('sluice').describe('the Kafka client id of the producers'),
  ssl: z.boolean().default(false).describe('TLS to the brokers, verified against the system CAs'),
  sasl: z.strictObject({
    mechanism: z.enum(['plain', 'scram-sha-256', 'scram-sha-512']).describe('SASL mechanism'),
    username: z.string().describe('SASL user'),
    password: secretRef.describe('SASL password (a secret)'),
  }).optional().describe('SASL authentication'),
  batch: z.strictObject({
    maxMessages: z.int().min(1).default(2000).describe('records per produce request at most'),
    maxBytes: z.int().min(1024).default(1_000_000).describe('bytes per produce request at most'),
    lingerMs: z.int().min(0).default(5).describe('how long a batch waits to fill (the next batch fills while one is in flight)'),
  }).prefault({}).describe('batching: one batch in flight (idempotent producer), the next fills meanwhile'),
  compression: z.enum(['none', 'gzip']).default('none').describe('record batch compression'),
  createTopics: z.strictObject({
    enabled: z.boolean().default(false).describe('create a missing topic on first use; off: a missing topic is dead-lettered'),
    partitions: z.int().min(1).default(6).describe('partitions of a topic sluice creates'),
    replicationFactor: z.int().min(1).default(1).describe('replication factor of a topic sluice creates'),
  }).prefault({}).describe('topics created on first use'),
  maxTopics: z.int().min(1).default(1000)
    .describe('topics one route template (a topic with a {level}) may name, counted from the cluster\'s topic list; past it that template\'s new topics are refused (dead-lettered)'),
  stuckAfterMs: z.int().min(1000).default(30_000)
    .describe('a topic failing on its own (deleted, not authorised, no leader) holds its records this long at most, then they are dead-lettered (destination-unavailable) and the window moves on'),
  deadLetterTopic: z.string().regex(/^[A-Za-z0-9._-]{1,249}$/).default('sluice.dead-letter')
    .describe('where refused messages go, with the reason in headers; must exist (or createTopics.enabled): sluice waits at start, not ready, until it does'),
}).prefault({}).describe('the Kafka sink and the dead-letter topic');

export type KafkaConfig = z.infer<typeof kafkaConfig>;

/** The Kafka SASL settings as kafkajs takes them, the password resolved (worker and replay alike). */
export function kafkaSasl(kafka: KafkaConfig): SASLOptions | undefined {
  if (!kafka.sasl) return undefined;
  // a union by mechanism, which TypeScript cannot narrow from our enum
  return { mechanism: kafka.sasl.mechanism, username: kafka.sasl.username, password: resolveSecret(kafka.sasl.password, 'kafka.sasl.password') } as SASLOptions;
}
