// The kafka section of the service config: the client, connection (TLS, SASL), the producer's
// settings, batching, topic creation (the dead-letter sink connects with the same settings).
// What a client cannot do is a config error naming it.
import { z } from 'zod';
import { hostPortProblem } from '../../addresses.ts';
import { secretRef } from '../../secrets.ts';
import { compressions, kafkaClients } from './client/kafka-client.ts';

const tokenSource = z.union([
  z.strictObject({ file: z.string().min(1).describe('file holding the token, read again for each connection (a sidecar may rotate it)') }),
  z.strictObject({ command: z.array(z.string().min(1)).min(1).describe('command printing the token on stdout, run for each connection (argv, no shell)') }),
]);

export const kafkaConfig = z
  .strictObject({
    client: z
      .enum(kafkaClients)
      .default('platformatic')
      .describe(
        "the Kafka client library: platformatic (@platformatic/kafka, the default on the bench's figures: docs/benchmarks.md), kafkajs, or rdkafka (librdkafka through node-rdkafka, an optional dependency built at install)",
      ),
    brokers: z
      .array(
        z
          .string()
          .min(1)
          .superRefine((v, ctx) => {
            const problem = hostPortProblem(v);
            if (problem) ctx.addIssue({ code: 'custom', message: problem });
          }),
      )
      .min(1)
      .default(['127.0.0.1:29092'])
      .describe('host:port of each bootstrap broker'),
    clientId: z.string().default('sluice').describe('the Kafka client id of the producers'),
    tls: z
      .strictObject({
        ca: z.string().optional().describe('CA certificate file (PEM) to verify the brokers with; absent: the system CAs'),
        cert: z.string().optional().describe('client certificate file (PEM), for mTLS'),
        key: z.string().optional().describe('client key file (PEM), for mTLS'),
        keyPassword: secretRef.optional().describe('passphrase of an encrypted client key (a secret)'),
        serverName: z.string().optional().describe("the name to verify the brokers' certificates against (SNI), when it is not the host in brokers"),
        rejectUnauthorized: z.boolean().default(true).describe("verify the brokers' certificates (keep true outside tests)"),
      })
      .superRefine((t, ctx) => {
        if ((t.cert === undefined) !== (t.key === undefined)) ctx.addIssue({ code: 'custom', message: 'cert and key go together (mTLS)' });
      })
      .optional()
      .describe('TLS to the brokers (absent: plaintext)'),
    sasl: z
      .strictObject({
        mechanism: z.enum(['plain', 'scram-sha-256', 'scram-sha-512', 'oauthbearer']).describe('SASL mechanism'),
        username: z.string().optional().describe('SASL user (plain, scram)'),
        password: secretRef.optional().describe('SASL password (plain, scram; a secret)'),
        token: tokenSource.optional().describe('OAUTHBEARER token source (oauthbearer): a file or a command'),
      })
      .superRefine((s, ctx) => {
        if (s.mechanism === 'oauthbearer') {
          if (!s.token) ctx.addIssue({ code: 'custom', path: ['token'], message: 'oauthbearer needs a token: { file } or { command }' });
          if (s.username !== undefined || s.password !== undefined)
            ctx.addIssue({ code: 'custom', message: 'oauthbearer takes a token, not a username or password' });
        } else {
          if (s.username === undefined) ctx.addIssue({ code: 'custom', path: ['username'], message: `${s.mechanism} needs a username` });
          if (s.password === undefined) ctx.addIssue({ code: 'custom', path: ['password'], message: `${s.mechanism} needs a password` });
          if (s.token !== undefined) ctx.addIssue({ code: 'custom', path: ['token'], message: 'a token is for oauthbearer only' });
        }
      })
      .optional()
      .describe('SASL authentication'),
    acks: z
      .union([z.literal(-1), z.literal(1)])
      .default(-1)
      .describe(
        '-1: a write is durable once every in-sync replica has it (needed by idempotence); 1: once the leader has it (a leader lost before replication loses acknowledged records)',
      ),
    idempotent: z.boolean().default(true).describe('an idempotent producer: a retried batch is written once and in order per partition'),
    maxInFlightRequests: z
      .int()
      .min(1)
      .max(5)
      .default(1)
      .describe(
        "produce requests in flight per broker connection; above 1 only without idempotence (sluice keeps 1 with every client's idempotent producer), and a retry may then reorder a partition",
      ),
    compression: z.enum(compressions).default('none').describe('record batch compression (kafkajs: none or gzip only)'),
    requestTimeoutMs: z.int().min(100).default(30_000).describe('how long a produce or admin request may take before it counts as failed'),
    connectTimeoutMs: z.int().min(100).default(3_000).describe('how long a broker connection may take to open'),
    batch: z
      .strictObject({
        maxMessages: z.int().min(1).default(2000).describe('records per produce request at most'),
        maxBytes: z.int().min(1024).default(1_000_000).describe('bytes per produce request at most'),
        lingerMs: z
          .int()
          .min(0)
          .default(5)
          .describe('how long a batch waits to fill (the next fills while one is in flight); it goes at once when an ack window is full'),
      })
      .prefault({})
      .describe('batching: one batch in flight per sink, the next fills meanwhile'),
    createTopics: z
      .strictObject({
        enabled: z.boolean().default(false).describe('create a missing topic on first use; off: a missing topic is dead-lettered'),
        partitions: z.int().min(1).default(6).describe('partitions of a topic sluice creates'),
        replicationFactor: z.int().min(1).default(1).describe('replication factor of a topic sluice creates'),
      })
      .prefault({})
      .describe('topics created on first use'),
    maxTopics: z
      .int()
      .min(1)
      .default(1000)
      .describe(
        "topics one route template (a topic with a {level}) may name, counted from the cluster's topic list; past it that template's new topics are refused (dead-lettered)",
      ),
    stuckAfterMs: z
      .int()
      .min(1000)
      .default(30_000)
      .describe(
        'a topic failing on its own (deleted, not authorised, no leader) holds its records this long at most, then they are dead-lettered (destination-unavailable) and the window moves on',
      ),
    schemaRegistry: z
      .strictObject({
        url: z
          .string()
          .url()
          .describe('the Confluent-compatible API, e.g. http://127.0.0.1:28081/apis/ccompat/v7 (Apicurio), http://registry:8081 (Confluent, Karapace)'),
        username: z.string().optional().describe('basic auth user'),
        password: secretRef.optional().describe('basic auth password (a secret)'),
        timeoutMs: z.int().min(100).default(10_000).describe('one registry request'),
        register: z
          .boolean()
          .default(true)
          .describe("register each route's value schema under its subject at first use; false: it must be registered already (looked up)"),
      })
      .optional()
      .describe('routes whose kafka.value has a schema (avro, protobuf, json-schema) write the Confluent wire format with the id it gives'),
  })
  .superRefine((k, ctx) => {
    // what a client cannot do is said here, at load, naming the client: never silently ignored
    if (k.client === 'kafkajs' && k.compression !== 'none' && k.compression !== 'gzip') {
      ctx.addIssue({
        code: 'custom',
        path: ['compression'],
        message: `compression ${k.compression} is not supported by kafka.client kafkajs (gzip only); use kafka.client platformatic`,
      });
    }
    if (k.idempotent && k.maxInFlightRequests > 1) {
      ctx.addIssue({
        code: 'custom',
        path: ['maxInFlightRequests'],
        message: `kafka.client ${k.client} keeps one request in flight per connection with an idempotent producer; set kafka.idempotent false to allow ${k.maxInFlightRequests}`,
      });
    }
    if (k.idempotent && k.acks !== -1) {
      ctx.addIssue({ code: 'custom', path: ['acks'], message: 'an idempotent producer needs acks -1; set kafka.idempotent false for acks 1' });
    }
  })
  .prefault({})
  .describe('the Kafka sink (and the connection of the Kafka dead letter)');

export type KafkaConfig = z.infer<typeof kafkaConfig>;
