// The audit sink's mapping from a message to a record (every property, the publisher where the
// broker names it) and its refusal of a payload too large for a record, which writes nothing.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Registry } from 'prom-client';
import { AuditLog } from '../../src/audit/audit-log.ts';
import { verifyAuditLog } from '../../src/audit/verify.ts';
import type { Message } from '../../src/message.ts';
import { createMetrics } from '../../src/observability/metrics.ts';
import { AuditRefusedError, AuditSink, maxAuditPayloadBytes, toRecord } from '../../src/sinks/audit/audit-sink.ts';

const message = (payload: Buffer, extra: Partial<Message> = {}): Message => ({
  topic: 'acme/s/z/valve/v-1/command', payload, qos: 2, retain: true, receivedAt: Date.UTC(2026, 10, 25, 8, 0, 0), packetId: 17,
  properties: {
    userProperties: { 'client-id': 'hmi-3', issuedBy: ['op-7', 'op-9'] }, contentType: 'application/json',
    responseTopic: 'acme/s/z/valve/v-1/reply', correlationData: Buffer.from([1, 2, 255]), payloadFormatIndicator: true, messageExpiryInterval: 30,
  },
  ...extra,
});

test('a message becomes a record with every property, bytes as base64, and the publisher from the named user property', () => {
  const r = toRecord(message(Buffer.from('{"open":true}')), { deviceId: 'v-1' }, 'w-commands', 'client-id');
  assert.deepEqual(r, {
    receivedAt: '2026-11-25T08:00:00.000Z', topic: 'acme/s/z/valve/v-1/command', levels: { deviceId: 'v-1' }, qos: 2, retain: true,
    packetId: 17, worker: 'w-commands', publisher: 'hmi-3',
    properties: {
      userProperties: { 'client-id': 'hmi-3', issuedBy: ['op-7', 'op-9'] }, contentType: 'application/json', responseTopic: 'acme/s/z/valve/v-1/reply',
      correlationData: Buffer.from([1, 2, 255]).toString('base64'), payloadFormatIndicator: true, messageExpiryInterval: 30,
    },
    payload: Buffer.from('{"open":true}').toString('base64'),
  });
  assert.equal(toRecord(message(Buffer.alloc(0), { properties: {} }), {}, 'w', 'client-id').publisher, undefined, 'no property, no publisher');
});

test('a payload too large for a record is refused (the pipeline dead-letters it) and nothing is written', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-audit-sink-'));
  const log = await AuditLog.open(dir);
  const metrics = createMetrics(new Registry(), { defaultMetrics: false });
  const sink = new AuditSink(log, undefined, { commandsWorker: undefined }, metrics);
  await assert.rejects(sink.record(message(Buffer.alloc(maxAuditPayloadBytes + 1)), {}, 'w'), AuditRefusedError);
  assert.equal(await sink.record(message(Buffer.from('ok')), {}, 'w'), 1);
  await log.close();
  assert.equal(verifyAuditLog(dir).commands, 1);
  assert.equal((await metrics.registry.getSingleMetric('sluice_audit_refused_total')?.get())?.values[0]?.value, 1);
});
