// The audit sink on a real disk: the conformance suite (conformance.ts). A write that fails for
// good: the log's next segment (after a rotation) is /dev/full, so the write gets ENOSPC.
import { mkdtempSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { defaultIdempotency, IdempotencyIndex } from '../../src/audit/exactly-once/idempotency-index.ts';
import { AuditLog } from '../../src/audit/log/audit-log.ts';
import { segmentName } from '../../src/audit/log/format.ts';
import { verifyAuditLog } from '../../src/audit/tools/verify.ts';
import { createAuditMetrics } from '../../src/sinks/audit/audit-metrics.ts';
import { type AuditItem, AuditSink, maxAuditPayloadBytes } from '../../src/sinks/audit/audit-sink.ts';
import { conformance } from './conformance.ts';

let dir = '';

async function open(options: { segmentBytes?: number } = {}) {
  dir = mkdtempSync(join(tmpdir(), 'sluice-audit-conformance-'));
  const log = await AuditLog.open(dir, options);
  return {
    log,
    sink: new AuditSink(log, undefined, IdempotencyIndex.open(dir, defaultIdempotency), { commandsClientId: undefined }, createAuditMetrics(new Registry())),
  };
}

const item = (payload: Buffer): AuditItem => ({
  message: { topic: 'acme/s/z/valve/v-1/command', payload, qos: 2, retain: false, properties: {}, receivedAt: Date.now(), packetId: 1 },
  levels: { deviceId: 'v-1' },
  clientId: 'w',
});

conformance<AuditItem>({
  name: 'audit',
  async create(t) {
    const { sink } = await open();
    t.after(() => sink.close());
    return sink;
  },
  good: (n, from = 0) => Array.from({ length: n }, (_, i) => item(Buffer.from(`cmd-${from + i}`))),
  async readBack(items) {
    const recorded = new Set<string>();
    verifyAuditLog(dir, {
      onFrame: (f) => {
        if (f.record.type === 'command') recorded.add(Buffer.from(f.record.payload, 'base64').toString());
      },
    });
    return items.filter((x) => recorded.has(x.message.payload.toString())).length;
  },
  bad: { item: () => item(Buffer.alloc(maxAuditPayloadBytes + 1)), reason: 'audit-refused' },
  unreachable: { none: 'the audit log is a local directory: there is no server to lose (a failed write is fatal, below)' },
  fatal: {
    async sink() {
      const { log, sink } = await open({ segmentBytes: 4096 });
      await sink.write([item(Buffer.alloc(5000, 0x61))]); // fills the first segment past its size
      symlinkSync('/dev/full', join(dir, segmentName(log.lastSeq + 1)));
      return sink;
    },
  },
  outage: { none: 'no server: the audit log is healthy until it fails for good (fatal, above)' },
});
