// The audit sink's mapping from a message to a record (every property, the publisher where the
// broker names it) and its refusal of a payload too large for a record, which writes nothing.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Registry } from 'prom-client';
import { defaultIdempotency, IdempotencyIndex } from '../../src/audit/exactly-once/idempotency-index.ts';
import { AuditLog } from '../../src/audit/log/audit-log.ts';
import { toRecord } from '../../src/audit/log/format.ts';
import { verifyAuditLog } from '../../src/audit/tools/verify.ts';
import type { Message } from '../../src/message.ts';
import { createAuditMetrics } from '../../src/sinks/audit/audit-metrics.ts';
import { AuditSink, maxAuditPayloadBytes } from '../../src/sinks/audit/audit-sink.ts';

const message = (payload: Buffer, extra: Partial<Message> = {}): Message => ({
  topic: 'acme/s/z/valve/v-1/command',
  payload,
  qos: 2,
  retain: true,
  receivedAt: Date.UTC(2026, 10, 25, 8, 0, 0),
  packetId: 17,
  properties: {
    userProperties: { 'client-id': 'hmi-3', issuedBy: ['op-7', 'op-9'] },
    contentType: 'application/json',
    responseTopic: 'acme/s/z/valve/v-1/reply',
    correlationData: Buffer.from([1, 2, 255]),
    payloadFormatIndicator: true,
    messageExpiryInterval: 30,
  },
  ...extra,
});

test('a message becomes a record with every property, bytes as base64, and the publisher from the named user property', () => {
  const r = toRecord(message(Buffer.from('{"open":true}')), { deviceId: 'v-1' }, 'w-commands', 'client-id');
  assert.deepEqual(r, {
    receivedAt: '2026-11-25T08:00:00.000Z',
    topic: 'acme/s/z/valve/v-1/command',
    levels: { deviceId: 'v-1' },
    qos: 2,
    retain: true,
    packetId: 17,
    worker: 'w-commands',
    publisher: 'hmi-3',
    properties: {
      userProperties: { 'client-id': 'hmi-3', issuedBy: ['op-7', 'op-9'] },
      contentType: 'application/json',
      responseTopic: 'acme/s/z/valve/v-1/reply',
      correlationData: Buffer.from([1, 2, 255]).toString('base64'),
      payloadFormatIndicator: true,
      messageExpiryInterval: 30,
    },
    payload: Buffer.from('{"open":true}').toString('base64'),
  });
  assert.equal(toRecord(message(Buffer.alloc(0), { properties: {} }), {}, 'w', 'client-id').publisher, undefined, 'no property, no publisher');
});

test('a payload too large for a record is rejected alone (the pipeline dead-letters it); the rest of the batch is recorded', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-audit-sink-'));
  const log = await AuditLog.open(dir);
  const registry = new Registry();
  const sink = new AuditSink(log, undefined, IdempotencyIndex.open(dir, defaultIdempotency), { commandsClientId: undefined }, createAuditMetrics(registry));
  const result = await sink.write([
    { message: message(Buffer.alloc(maxAuditPayloadBytes + 1)), levels: {}, clientId: 'w' },
    { message: message(Buffer.from('ok')), levels: {}, clientId: 'w' },
  ]);
  assert.deepEqual(
    result.rejected.map((r) => [r.index, r.reason]),
    [[0, 'audit-refused']],
  );
  assert.deepEqual(result.annotations, [undefined, { 'sluice-audit-seq': '1' }], "the record number goes on to the route's other outputs");
  await log.close();
  assert.equal(verifyAuditLog(dir).commands, 1);
  assert.equal((await registry.getSingleMetric('sluice_audit_refused_total')?.get())?.values[0]?.value, 1);
});
