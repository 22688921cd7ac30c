// The audit sink as a plugin: a route's `audit: true`, the `audit:` config section, the log and
// (with QoS 2 subscriptions) the exactly-once ledger of the command connection. Phase 0: the
// record is durable before the route's other outputs are written, and they carry its number.
// README.md beside this file is its documentation.
import { isUtf8 } from 'node:buffer';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import type { Logger } from 'pino';
import { z } from 'zod';
import { SegmentArchiver } from '../../audit/archive/archiver.ts';
import { folder, S3Store } from '../../audit/archive/s3.ts';
import { ExactlyOnceLedger } from '../../audit/exactly-once/exactly-once-ledger.ts';
import { IdempotencyIndex, keyReader } from '../../audit/exactly-once/idempotency-index.ts';
import { AnchorPublisher, anchorOf, fileWitness, httpWitness, type Witness } from '../../audit/log/anchors.ts';
import { AuditLog } from '../../audit/log/audit-log.ts';
import { monotonicMs } from '../../clock.ts';
import { RuleError } from '../../mapping/rule-error.ts';
import type { OutputCompiler, RouteOutput } from '../../router/route-output.ts';
import { resolveSecret } from '../../secrets.ts';
import { createKafkaClient } from '../kafka/client/create-client.ts';
import type { ProducerSession } from '../kafka/client/kafka-client.ts';
import { type KafkaConfig, kafkaConfig } from '../kafka/config.ts';
import type { SinkPlugin } from '../plugin.ts';
import { directoryProbe } from '../probe.ts';
import { SinkError } from '../sink.ts';
import { type AuditMetrics, createAuditMetrics } from './audit-metrics.ts';
import { type AuditItem, AuditSink } from './audit-sink.ts';
import { type AuditConfig, auditConfig } from './config.ts';
import { freeBytes, untilRoom } from './disk-room.ts';

const keySource = z
  .union([
    z.strictObject({ userProperty: z.string().min(1).describe('the user property that carries the key') }),
    z.strictObject({ correlationData: z.literal(true).describe('the correlation data (its bytes) is the key') }),
    z.strictObject({ jsonPath: z.string().startsWith('$').describe('a JSON path into the payload, e.g. "$.commandId" (a string or a number)') }),
  ])
  .describe('where the command carries its idempotency key');

const auditRoute = z.union([
  z.boolean(),
  z.strictObject({
    idempotencyKey: keySource.describe(
      "a command with a key already recorded within audit.idempotency.windowMs is not recorded again (a publisher's retry with a new packet id); a command without one is recorded and counted",
    ),
  }),
]);

/** Recorded as it came, whatever its payload or levels: a command is evidence first. */
const auditRouteCompiler: OutputCompiler = {
  key: 'audit',
  compile: (part, context): RouteOutput<AuditItem> => {
    const spec = part as z.infer<typeof auditRoute>;
    let readKey: ((m: AuditItem['message']) => string | undefined) | undefined;
    if (typeof spec === 'object') {
      try {
        readKey = keyReader(spec.idempotencyKey);
      } catch (err) {
        throw new RuleError([...context.path, 'idempotencyKey'], (err as Error).message);
      }
    }
    return {
      sink: 'audit',
      readsPayload: false,
      phase: 0,
      encode: readKey
        ? ({ message, levels, clientId }) => ({ item: { message, levels, clientId, key: readKey(message) ?? null } })
        : ({ message, levels, clientId }) => ({ item: { message, levels, clientId } }),
    };
  },
};

export const auditPlugin: SinkPlugin = {
  name: 'audit',
  title: 'audit log',
  route: {
    schema: auditRoute
      .default(false)
      .describe(
        'record every message of this route in the audit log (exactly once for QoS 2 subscriptions), before any other output; true, or an object naming the idempotency key',
      ),
    compiler: auditRouteCompiler,
    uses: 'has audit: true',
  },
  config: auditConfig,
  paths: ['dir', 'anchors.file'],
  async create({ section, sections, clientIds, log, registry, onFatal: fatalOf, waiting, signal }) {
    const a = section as AuditConfig;
    // the log's own fatal errors, as every sink reports one: a SinkError that is never retried
    const onFatal = (err: Error) => fatalOf(new SinkError('audit', err.message, { cause: err, retriable: false }));
    const dir = a.dir; // resolved against the config's directory at load
    const metrics = createAuditMetrics(registry);
    const signing =
      a.signing &&
      (() => {
        const privateKey = createPrivateKey(resolveSecret(a.signing.privateKey, 'audit.signing.privateKey'));
        return { privateKey, publicKey: createPublicKey(privateKey), every: a.signing.everyRecords, everyMs: a.signing.everyMs };
      })();
    const syncDelayMs = Number(process.env.SLUICE_TEST_AUDIT_SYNC_DELAY_MS ?? 0);
    // a disk still full: wait, not ready, rather than start into a failed write (disk-room.ts)
    metrics.minFree.set(a.minFreeBytes);
    const sampled = (free: number) => metrics.diskFree.set(free);
    await untilRoom(dir, a.minFreeBytes, { log, waiting, signal, sampled });
    const worker = clientIds.commands ?? clientIds.telemetry;
    const kafka = (sections.kafka ?? kafkaConfig.parse(undefined)) as KafkaConfig;
    const anchors = a.anchors && anchorPublisher(a.anchors, { kafka, clientId: worker }, metrics, log);
    const archive = a.archive && (await segmentArchiver(a.archive, dir, worker, metrics, log));
    let lastSeq = 0;
    const sampler = setInterval(() => {
      try {
        sampled(freeBytes(dir));
      } catch {
        // the volume went away: the next write says so
      }
      if (archive) metrics.archiveFailing.set(archive.failingMs() / 1000);
      for (const w of anchors?.state() ?? []) {
        metrics.anchorFailing.set({ witness: w.witness }, w.failingMs / 1000);
        metrics.unanchored.set({ witness: w.witness }, lastSeq - w.lastSeq);
      }
    }, 10_000).unref();
    // a log that cannot be opened (damaged, locked) stops the start
    const auditLog = await AuditLog.open(dir, {
      segmentBytes: a.segmentBytes,
      segmentMs: a.segmentMaxAgeMs,
      ...(signing ? { signing } : {}),
      ...(syncDelayMs > 0 ? { syncDelayMs } : {}),
      onFatal,
      onRepair: (segment, bytes) => log.warn({ segment, bytes }, 'audit log: cut a torn last record left by a crash (never acknowledged)'),
      onSegment: (segment) => {
        metrics.segments.inc();
        log.info({ segment }, 'audit log: new segment');
        archive?.sealedUpTo(segment); // the one before is sealed: uploaded off the commit path
      },
      onCheckpoint: (checkpoint) => {
        metrics.checkpoints.inc();
        anchors?.publish(anchorOf(checkpoint, worker)); // off the commit path: never awaited
      },
    });
    auditLog.onSync = (seconds, records, bytes) => {
      lastSeq = auditLog.lastSeq;
      metrics.fsync.observe(seconds);
      metrics.commitSize.observe(records);
      metrics.records.inc(records);
      metrics.bytes.inc(bytes);
    };
    lastSeq = auditLog.lastSeq;
    archive?.start(); // what an earlier run sealed and the archive lacks
    const commands = clientIds.commands;
    const ledger =
      commands === undefined
        ? undefined
        : await ExactlyOnceLedger.open(dir, commands, {
            auditHead: () => auditLog.lastSeq,
            releasedHistory: a.exactlyOnce.releasedHistory,
            onFatal,
          });
    const keys = IdempotencyIndex.open(dir, a.idempotency);
    metrics.awaitingRelease.set(ledger?.size ?? 0);
    metrics.releasedHistory.set(ledger?.releasedSize ?? 0);
    metrics.idempotencyKeys.set(keys.size);
    log.info(
      {
        dir,
        lastSeq: auditLog.lastSeq,
        awaitingRelease: ledger?.size ?? 0,
        releasedHistory: ledger?.releasedSize ?? 0,
        idempotencyKeys: keys.size,
        signed: signing !== undefined,
      },
      'audit log open',
    );
    const sink = new AuditSink(
      auditLog,
      ledger,
      keys,
      { commandsClientId: commands, publisherProperty: a.publisherProperty, anchors, archive, onClose: () => clearInterval(sampler) },
      metrics,
    );
    return {
      sink,
      // the log group-commits by itself: hand it every record at once, one batch at a time
      batch: { maxItems: 10_000, maxBytes: 256 * 1024 * 1024, lingerMs: 0 },
      ...(ledger
        ? {
            qos2: {
              release: (packetId: number) => sink.release(packetId),
              sessionLost: () => {
                if (ledger.size > 0)
                  log.warn({ awaitingRelease: ledger.size }, 'the broker kept no session for the command connection: its packet ids in flight are void');
                ledger.sessionLost();
              },
              gate: () => ledger.gate(),
            },
          }
        : {}),
    };
  },
  async probe({ section }) {
    const a = section as AuditConfig;
    const p = await directoryProbe(a.dir);
    // the signing key was read with the config (a missing one fails the load): say whether there is one
    return { ok: p.ok, detail: `${p.detail}${a.signing ? ', checkpoints signed' : ', checkpoints unsigned (no audit.signing)'}` };
  },
  describe(item) {
    const { message, levels } = item as AuditItem;
    // the payload as text when it is UTF-8, else base64 (JSON.stringify would spell a Buffer out byte by byte)
    return {
      topic: message.topic,
      qos: message.qos,
      levels,
      ...(isUtf8(message.payload) ? { payload: message.payload.toString('utf8') } : { payloadBase64: message.payload.toString('base64') }),
    };
  },
};

/** The witnesses audit.anchors names, behind one publisher; a failing one is logged once a minute at most. */
function anchorPublisher(
  c: NonNullable<AuditConfig['anchors']>,
  kafka: { readonly kafka: KafkaConfig; readonly clientId: string },
  metrics: AuditMetrics,
  log: Logger,
): AnchorPublisher {
  const witnesses: Witness[] = [];
  if (c.file !== undefined) witnesses.push(fileWitness(c.file));
  if (c.url !== undefined) witnesses.push(httpWitness(c.url, c.token && resolveSecret(c.token, 'audit.anchors.token'), c.timeoutMs));
  if (c.kafkaTopic !== undefined) witnesses.push(kafkaWitness(kafka.kafka, c.kafkaTopic, `${kafka.clientId}-anchors`));
  for (const w of witnesses) {
    metrics.anchorFailing.set({ witness: w.name }, 0);
    metrics.unanchored.set({ witness: w.name }, 0);
  }
  const warnedAt = new Map<string, number>();
  return new AnchorPublisher(
    witnesses,
    {
      published(witness, anchor) {
        metrics.anchorsPublished.inc({ witness });
        if (warnedAt.delete(witness)) log.info({ witness, seq: anchor.seq }, 'audit anchors: the witness takes anchors again');
      },
      failed(witness, err) {
        metrics.anchorFailures.inc({ witness });
        const now = monotonicMs();
        if (now - (warnedAt.get(witness) ?? Number.NEGATIVE_INFINITY) < 60_000) return;
        warnedAt.set(witness, now);
        log.warn({ witness, err: err.message }, 'audit anchors: a witness refused an anchor (retried; commands are still recorded)');
      },
    },
    { maxFailingMs: c.maxFailingMs },
  );
}

/** The archive audit.archive names; a failing upload is logged once a minute at most. */
async function segmentArchiver(
  c: NonNullable<AuditConfig['archive']>,
  dir: string,
  worker: string,
  metrics: AuditMetrics,
  log: Logger,
): Promise<SegmentArchiver> {
  const store = await S3Store.open(
    {
      endpoint: c.endpoint,
      region: c.region,
      forcePathStyle: c.forcePathStyle ?? c.endpoint !== undefined,
      credentials:
        c.accessKeyId && c.secretAccessKey
          ? {
              accessKeyId: resolveSecret(c.accessKeyId, 'audit.archive.accessKeyId'),
              secretAccessKey: resolveSecret(c.secretAccessKey, 'audit.archive.secretAccessKey'),
            }
          : undefined,
      timeoutMs: c.timeoutMs,
    },
    c.bucket,
  );
  let warnedAt = Number.NEGATIVE_INFINITY;
  return new SegmentArchiver(
    store,
    {
      archived(segment, bytes, outcome) {
        metrics.archived.inc();
        if (outcome === 'stored') metrics.archivedBytes.inc(bytes);
        if (warnedAt !== Number.NEGATIVE_INFINITY) log.info({ segment }, 'audit archive: uploads work again');
        warnedAt = Number.NEGATIVE_INFINITY;
        log.info({ segment, bytes, outcome, bucket: c.bucket }, 'audit archive: segment locked in the archive');
      },
      failed(segment, err) {
        metrics.archiveFailures.inc();
        const now = monotonicMs();
        if (now - warnedAt < 60_000) return;
        warnedAt = now;
        log.warn({ segment, bucket: c.bucket, err: err.message }, 'audit archive: an upload failed (retried; commands are still recorded)');
      },
      backlog: (segments) => metrics.archiveBacklog.set(segments),
    },
    { dir, keyPrefix: `${folder(c.prefix)}${worker}/`, mode: c.mode, retentionDays: c.retentionDays, retryMs: c.retryMs, maxFailingMs: c.maxFailingMs },
  );
}

/** A Kafka topic as a witness: one record per anchor, keyed by worker, over a producer of its own (connected at the first anchor). */
function kafkaWitness(k: KafkaConfig, topic: string, clientId: string): Witness {
  let session: ProducerSession | undefined;
  return {
    name: 'kafka',
    async publish(anchor) {
      session ??= await (async () => {
        const s = (await createKafkaClient(k, { clientId })).session('main');
        await s.connect();
        return s;
      })();
      const record = { topic, key: anchor.worker, value: Buffer.from(JSON.stringify(anchor)), headers: {}, timestamp: Date.now() };
      try {
        await session.send([{ topic, records: [record] }]);
      } catch (err) {
        await session.reset().catch(() => {}); // a new producer session after any failed send
        throw err;
      }
    },
    async close() {
      await session?.close();
    },
  };
}
