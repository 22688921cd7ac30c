// The audit section of the service config. Required when a route has audit: true.
import { z } from 'zod';
import { secretRef } from '../../secrets.ts';

export const auditConfig = z
  .strictObject({
    dir: z.string().min(1).describe('audit log directory, relative to this file; one writer (worker) per directory'),
    segmentBytes: z
      .int()
      .min(4096)
      .default(64 * 1024 * 1024)
      .describe('start a new segment file past this size'),
    segmentMaxAgeMs: z.int().min(1000).default(3_600_000).describe('start a new segment file after this long'),
    minFreeBytes: z
      .int()
      .min(0)
      .default(8 * 1024 * 1024)
      .describe(
        "free bytes the log's volume must have for the worker to start: below it, it waits, not ready, taking no command it could not record (a running worker stops with exit 70 when a write fails)",
      ),
    publisherProperty: z
      .string()
      .min(1)
      .optional()
      .describe('user property that carries the publishing client identity, when the broker adds one (recorded as "publisher")'),
    exactlyOnce: z
      .strictObject({
        releasedHistory: z
          .strictObject({
            maxEntries: z
              .int()
              .min(0)
              .max(65_535)
              .default(10_000)
              .describe('released commands remembered; below 65,536 so that a broker assigning packet ids in turn cannot have reused one within it'),
            maxAgeMs: z
              .int()
              .min(0)
              .default(3_600_000)
              .describe(
                "...for this long: at least the broker's save interval (Mosquitto autosave_interval), so a crash that rolls the broker back cannot make a command recorded twice",
              ),
          })
          .prefault({})
          .describe(
            'released QoS 2 commands kept (durably) so that a broker restarted from an older save, sending them again with DUP set, finds them recorded',
          ),
      })
      .prefault({})
      .describe('exactly once across broker restarts and rollbacks'),
    idempotency: z
      .strictObject({
        windowMs: z.int().min(1000).default(86_400_000).describe('how long a recorded idempotency key is remembered (routes with audit.idempotencyKey)'),
        maxKeys: z.int().min(1).default(1_000_000).describe('at most this many keys are remembered (the oldest are forgotten first)'),
      })
      .prefault({})
      .describe('the index of application idempotency keys, rebuilt from the log at start'),
    signing: z
      .strictObject({
        privateKey: secretRef.describe('Ed25519 private key, PEM (`sluice audit keygen` makes one)'),
        everyRecords: z.int().min(1).default(1000).describe('sign the chain head after this many records'),
        everyMs: z.int().min(100).default(60_000).describe('...or after this long, when records came since the last checkpoint'),
      })
      .optional()
      .describe('signed checkpoints: a rewritten log with recomputed hashes fails `sluice audit verify --public-key`'),
    anchors: z
      .strictObject({
        file: z
          .string()
          .min(1)
          .optional()
          .describe(
            "JSON lines, one per signed checkpoint, appended and fdatasync'd; relative to this file. Put it where the log's volume is not (a witness that shares its fate proves nothing)",
          ),
        url: z.string().url().optional().describe('POST each anchor here as JSON; any 2xx keeps it'),
        token: secretRef.optional().describe('bearer token for url (a secret)'),
        kafkaTopic: z
          .string()
          .regex(/^[A-Za-z0-9._-]{1,249}$/)
          .optional()
          .describe(
            "a Kafka topic, keyed by worker (create it with cleanup.policy=compact: the newest anchor of every worker stays), written with the kafka section's connection settings",
          ),
        timeoutMs: z.int().min(100).default(10_000).describe('one POST to url'),
        maxFailingMs: z
          .int()
          .min(1000)
          .default(300_000)
          .describe('a witness failing longer than this makes /readyz name it (commands are still recorded: anchors never hold one)'),
      })
      .refine((a) => a.file !== undefined || a.url !== undefined || a.kafkaTopic !== undefined, {
        message: 'anchors needs a witness: file, url or kafkaTopic',
      })
      .optional()
      .describe(
        'publish every signed checkpoint outside the log (needs signing): `sluice audit verify --anchors` then catches a log cut short, restored from an older copy, or rewritten and signed again',
      ),
    archive: z
      .strictObject({
        bucket: z.string().min(3).describe('an S3 bucket created with Object Lock enabled'),
        prefix: z
          .string()
          .default('')
          .describe("key prefix; each worker's segments go under <prefix><worker>/ (its commands client id), e.g. prod/sluice-0/00000000000000000001.audit"),
        endpoint: z.string().url().optional().describe('an S3-compatible server (http(s)://host:port); absent: AWS, by region'),
        region: z.string().min(1).default('us-east-1').describe("the bucket's region (any value an S3-compatible server accepts)"),
        forcePathStyle: z.boolean().optional().describe('bucket in the path, not the host name (default: true with an endpoint, false for AWS)'),
        accessKeyId: secretRef
          .optional()
          .describe("access key id (a secret); absent: the AWS SDK's own chain (AWS_ACCESS_KEY_ID, a profile, a pod's web identity)"),
        secretAccessKey: secretRef.optional().describe('secret access key (a secret), with accessKeyId'),
        retentionDays: z
          .int()
          .min(1)
          .max(36_500)
          .default(365)
          .describe('each segment is locked for this many days from its upload: in COMPLIANCE mode nobody, root included, can delete it before then'),
        mode: z
          .enum(['COMPLIANCE', 'GOVERNANCE'])
          .default('COMPLIANCE')
          .describe('COMPLIANCE: no one can shorten or lift the lock; GOVERNANCE: a user with s3:BypassGovernanceRetention can'),
        retryMs: z.int().min(100).default(30_000).describe('wait between attempts when an upload fails'),
        timeoutMs: z.int().min(1000).default(120_000).describe('one upload'),
        maxFailingMs: z
          .int()
          .min(1000)
          .default(3_600_000)
          .describe('uploads failing longer than this make /readyz name the archive (commands are still recorded: the archive never holds one)'),
      })
      .refine((a) => (a.accessKeyId === undefined) === (a.secretAccessKey === undefined), {
        message: 'accessKeyId and secretAccessKey go together (or neither, for the SDK chain)',
      })
      .optional()
      .describe(
        'upload every sealed segment (the writer has moved on to the next; checkpoints included) to S3 under Object Lock: `sluice audit verify s3://bucket/prefix` then checks the log from the archive alone',
      ),
  })
  .refine((a) => a.anchors === undefined || a.signing !== undefined, {
    path: ['anchors'],
    message: 'anchors are the signed checkpoints: set audit.signing too',
  })
  .optional()
  .describe('required when a route has audit: true');

export type AuditConfig = NonNullable<z.infer<typeof auditConfig>>;
