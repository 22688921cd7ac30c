// The idempotency-key index: keys read from a user property, the correlation data or a JSON
// path; a key recorded within the window resolves to its first record, also after a restart
// (the index is rebuilt from the records in the log), and is forgotten past the window.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { IdempotencyIndex, keyReader } from '../../src/audit/exactly-once/idempotency-index.ts';
import { AuditLog } from '../../src/audit/log/audit-log.ts';
import { toRecord } from '../../src/audit/log/format.ts';
import type { Message } from '../../src/message.ts';

const message = (payload: string, properties: Message['properties'] = {}, receivedAt = Date.now()): Message => ({
  topic: 'acme/s/z/valve/v-1/command',
  payload: Buffer.from(payload),
  qos: 2,
  retain: false,
  properties,
  receivedAt,
  packetId: 7,
});

test('keys come from a user property, the correlation data or a JSON path; none when absent, empty or too long', () => {
  const byProperty = keyReader({ userProperty: 'commandId' });
  assert.equal(byProperty(message('{}', { userProperties: { commandId: 'c-1' } })), 'c-1');
  assert.equal(byProperty(message('{}', { userProperties: { commandId: ['c-2', 'c-3'] } })), 'c-2');
  assert.equal(byProperty(message('{}')), undefined);
  assert.equal(byProperty(message('{}', { userProperties: { commandId: '' } })), undefined);
  assert.equal(byProperty(message('{}', { userProperties: { commandId: 'x'.repeat(1025) } })), undefined);
  const byCorrelation = keyReader({ correlationData: true });
  assert.equal(byCorrelation(message('{}', { correlationData: Buffer.from([0, 1, 2]) })), 'AAEC');
  const byPath = keyReader({ jsonPath: '$.command.id' });
  assert.equal(byPath(message('{"command":{"id":"abc"}}')), 'abc');
  assert.equal(byPath(message('{"command":{"id":42}}')), '42');
  // ids past 2^53 stay apart: a double would make them one key, the second command a "redelivery"
  assert.equal(byPath(message('{"command":{"id":12345678901234567890}}')), '12345678901234567890');
  assert.equal(byPath(message('{"command":{"id":12345678901234567891}}')), '12345678901234567891');
  assert.equal(byPath(message('\ufeff{"command":{"id":"abc"}}')), 'abc', 'a byte order mark, as the router takes it');
  assert.equal(byPath(message('{"command":{"id":{"nested":1}}}')), undefined, 'an object is not a key');
  assert.equal(byPath(message('not json')), undefined);
  assert.throws(() => keyReader({ jsonPath: 'command.id' }), /starts with "\$"/);
});

test('a key recorded within the window resolves to its first record, also after a restart; past the window it is new', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-keys-'));
  let now = Date.parse('2026-12-01T10:00:00Z');
  const options = { windowMs: 60_000, maxKeys: 2, now: () => now };
  const log = await AuditLog.open(dir);
  const index = IdempotencyIndex.open(dir, options);
  const write = (key: string) => {
    const seq = log.append(toRecord(message(`{"k":"${key}"}`, {}, now), {}, 'w', undefined, key));
    index.recording(key, seq);
    return seq;
  };
  assert.equal(await write('a'), 1);
  assert.equal(await index.recorded('a'), 1);
  assert.equal(index.recorded('b'), undefined);
  now += 10_000;
  assert.equal(await write('b'), 2);
  await log.close();
  // restart: rebuilt from the log
  const again = IdempotencyIndex.open(dir, options);
  assert.equal(await again.recorded('a'), 1);
  assert.equal(await again.recorded('b'), 2);
  now += 55_000;
  assert.equal(again.recorded('a'), undefined, 'a is past the window');
  assert.equal(await again.recorded('b'), 2, 'b is not');
  assert.equal(IdempotencyIndex.open(dir, options).size, 1, 'a restart now indexes only b');
  const bounded = IdempotencyIndex.open(dir, { ...options, windowMs: 3_600_000, maxKeys: 1 });
  assert.equal(bounded.size, 1, 'bounded by maxKeys');
  assert.equal(await bounded.recorded('b'), 2, 'the newest kept');
});
