// The audit sink as a plugin: a route's `audit: true`, the `audit:` config section, the log and
// (with QoS 2 subscriptions) the exactly-once ledger of the command connection. Phase 0: the
// record is durable before the route's other outputs are written, and they carry its number.
// README.md beside this file is its documentation.
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { z } from 'zod';
import { AuditLog } from '../../audit/log/audit-log.ts';
import { ExactlyOnceLedger } from '../../audit/exactly-once/exactly-once-ledger.ts';
import type { OutputCompiler, RouteOutput } from '../../router/route-output.ts';
import { resolveSecret } from '../../secrets.ts';
import type { SinkPlugin } from '../plugin.ts';
import { createAuditMetrics } from './audit-metrics.ts';
import { AuditSink, type AuditItem } from './audit-sink.ts';
import { auditConfig, type AuditConfig } from './config.ts';

/** Recorded as it came, whatever its payload or levels: a command is evidence first. */
const auditRouteCompiler: OutputCompiler = {
  key: 'audit',
  compile: (): RouteOutput<AuditItem> => ({
    sink: 'audit',
    readsPayload: false,
    phase: 0,
    encode: ({ message, levels, worker }) => ({ item: { message, levels, worker } }),
  }),
};

export const auditPlugin: SinkPlugin = {
  name: 'audit',
  title: 'audit log',
  route: {
    schema: z.boolean().default(false)
      .describe('record every message of this route in the audit log (exactly once for QoS 2 subscriptions), before any other output'),
    compiler: auditRouteCompiler,
  },
  config: auditConfig,
  paths: ['dir'],
  async create({ section, clientIds, log, registry, onFatal }) {
    const a = section as AuditConfig;
    const dir = a.dir; // resolved against the config's directory at load
    const metrics = createAuditMetrics(registry);
    const signing = a.signing && (() => {
      const privateKey = createPrivateKey(resolveSecret(a.signing.privateKey, 'audit.signing.privateKey'));
      return { privateKey, publicKey: createPublicKey(privateKey), every: a.signing.everyRecords, everyMs: a.signing.everyMs };
    })();
    const syncDelayMs = Number(process.env.SLUICE_TEST_AUDIT_SYNC_DELAY_MS ?? 0);
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
      },
      onCheckpoint: () => metrics.checkpoints.inc(),
    });
    auditLog.onSync = (seconds, records, bytes) => {
      metrics.fsync.observe(seconds);
      metrics.commitSize.observe(records);
      metrics.records.inc(records);
      metrics.bytes.inc(bytes);
    };
    const commands = clientIds.commands;
    const ledger = commands === undefined ? undefined : await ExactlyOnceLedger.open(dir, commands, { auditHead: () => auditLog.lastSeq, onFatal });
    metrics.awaitingRelease.set(ledger?.size ?? 0);
    log.info({ dir, lastSeq: auditLog.lastSeq, awaitingRelease: ledger?.size ?? 0, signed: signing !== undefined }, 'audit log open');
    const sink = new AuditSink(auditLog, ledger, { commandsWorker: commands, publisherProperty: a.publisherProperty }, metrics);
    return {
      sink,
      // the log group-commits by itself: hand it every record at once, one batch at a time
      batch: { maxItems: 10_000, maxBytes: 256 * 1024 * 1024, lingerMs: 0 },
      ...(ledger ? {
        qos2: {
          release: (packetId: number) => sink.release(packetId),
          sessionLost: () => {
            if (ledger.size > 0) log.warn({ awaitingRelease: ledger.size }, 'the broker kept no session for the command connection: its packet ids in flight are void');
            ledger.sessionLost();
          },
          gate: () => ledger.gate(),
        },
      } : {}),
    };
  },
};
