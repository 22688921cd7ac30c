// The service config file (broker, sinks, HTTP, limits): one zod schema gives the types, the
// validation with file and line, and the JSON schema (`sluice config schema`).
import { z } from 'zod';

/** A secret never sits in the file: it is read from an environment variable or a file. */
export const secretRef = z.union([
  z.strictObject({ env: z.string().min(1).describe('environment variable holding the secret') }),
  z.strictObject({ file: z.string().min(1).describe('file holding the secret (trailing newline ignored)') }),
]);

const backoff = z.strictObject({
  minMs: z.int().min(1).default(200),
  maxMs: z.int().min(1).default(10_000),
});

export const serviceConfig = z.strictObject({
  rules: z.string().default('rules.yaml').describe('routing rules file, relative to this file'),
  mqtt: z.strictObject({
    url: z.string().default('mqtt://127.0.0.1:21883').describe('mqtt://, mqtts://, ws:// or wss:// URL of the broker'),
    group: z.string().regex(/^[^/+#$]+$/, 'no /, +, # or $ in a share group name').default('sluice')
      .describe('shared subscription group: filters are subscribed as $share/<group>/<filter>'),
    clientId: z.string().min(1).optional()
      .describe('stable per worker, so a restart resumes its session; default sluice-<hostname>, or SLUICE_CLIENT_ID'),
    sessionExpiryInterval: z.int().min(1).max(0xffffffff).default(3600)
      .describe('seconds the broker keeps the session (and queues messages) while the worker is away'),
    receiveMaximum: z.int().min(1).max(65535).default(1000)
      .describe('messages in flight at most: advertised to the broker and enforced by sluice'),
    keepalive: z.int().min(1).max(65535).default(30).describe('seconds'),
    connectTimeoutMs: z.int().min(100).default(10_000),
    reconnect: backoff.prefault({ minMs: 500, maxMs: 30_000 }).describe('reconnect backoff with full jitter'),
    username: z.string().optional(),
    password: secretRef.optional(),
    commands: z.strictObject({
      clientIdSuffix: z.string().min(1).default('-commands')
        .describe('QoS 2 subscriptions run on a connection of their own, client id <clientId><suffix> (stable: its session holds the QoS 2 state)'),
      receiveMaximum: z.int().min(1).max(65535).default(100)
        .describe('commands taken and not yet recorded (PUBREC) at most, on the command connection'),
    }).prefault({}),
    tls: z.strictObject({
      ca: z.string().optional().describe('CA certificate file (PEM)'),
      cert: z.string().optional().describe('client certificate file (PEM), for mTLS'),
      key: z.string().optional().describe('client key file (PEM), for mTLS'),
      rejectUnauthorized: z.boolean().default(true),
    }).optional(),
  }).prefault({}),
  kafka: z.strictObject({
    brokers: z.array(z.string().min(1)).min(1).default(['127.0.0.1:29092']),
    clientId: z.string().default('sluice'),
    ssl: z.boolean().default(false),
    sasl: z.strictObject({
      mechanism: z.enum(['plain', 'scram-sha-256', 'scram-sha-512']),
      username: z.string(),
      password: secretRef,
    }).optional(),
    batch: z.strictObject({
      maxMessages: z.int().min(1).default(2000),
      maxBytes: z.int().min(1024).default(1_000_000),
      lingerMs: z.int().min(0).default(5),
    }).prefault({}),
    compression: z.enum(['none', 'gzip']).default('none'),
    createTopics: z.strictObject({
      enabled: z.boolean().default(false).describe('create a missing topic on first use; off: a missing topic is dead-lettered'),
      partitions: z.int().min(1).default(6),
      replicationFactor: z.int().min(1).default(1),
    }).prefault({}),
    maxTopics: z.int().min(1).default(1000).describe('distinct topics sluice writes at most; past it a record is dead-lettered'),
    deadLetterTopic: z.string().regex(/^[A-Za-z0-9._-]{1,249}$/).default('sluice.dead-letter'),
  }).prefault({}),
  influx: z.strictObject({
    url: z.string().describe('base URL; sluice POSTs to <url>/api/v2/write'),
    token: secretRef.optional().describe('InfluxDB 2 token, or "user:password" for 1.8'),
    org: z.string().default(''),
    bucket: z.string().min(1).describe('bucket; "database/retention-policy" for InfluxDB 1.8'),
    batch: z.strictObject({
      maxPoints: z.int().min(1).default(5000),
      lingerMs: z.int().min(0).default(50),
    }).prefault({}),
    timeoutMs: z.int().min(100).default(10_000),
  }).optional().describe('required when a route has an influx output'),
  audit: z.strictObject({
    dir: z.string().min(1).describe('audit log directory, relative to this file; one writer (worker) per directory'),
    segmentBytes: z.int().min(4096).default(64 * 1024 * 1024).describe('start a new segment file past this size'),
    segmentMaxAgeMs: z.int().min(1000).default(3_600_000).describe('start a new segment file after this long'),
    publisherProperty: z.string().min(1).optional()
      .describe('user property that carries the publishing client identity, when the broker adds one (recorded as "publisher")'),
    signing: z.strictObject({
      privateKey: secretRef.describe('Ed25519 private key, PEM (`sluice audit keygen` makes one)'),
      everyRecords: z.int().min(1).default(1000).describe('sign the chain head after this many records'),
      everyMs: z.int().min(100).default(60_000).describe('...or after this long, when records came since the last checkpoint'),
    }).optional().describe('signed checkpoints: a rewritten log with recomputed hashes fails `sluice audit verify --public-key`'),
  }).optional().describe('required when a route has audit: true'),
  retry: backoff.prefault({}).describe('sink retry backoff (a sink retries until durable; nothing is acked meanwhile)'),
  http: z.strictObject({
    host: z.string().default('127.0.0.1').describe('0.0.0.0 in a container'),
    port: z.int().min(0).max(65535).default(9464).describe('/metrics, /healthz, /readyz; 0 picks a free port'),
  }).prefault({}),
  shutdown: z.strictObject({
    deadlineMs: z.int().min(100).default(15_000).describe('SIGTERM: stop reading, flush, ack, disconnect within this'),
  }).prefault({}),
  log: z.strictObject({
    level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  }).prefault({}),
});

export type ServiceConfig = z.infer<typeof serviceConfig>;
export type SecretRef = z.infer<typeof secretRef>;
