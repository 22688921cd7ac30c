// The exactly-once ledger on disk: which QoS 2 packet ids are recorded and not yet released,
// rebuilt after a crash from its journal and the audit log; releases and session resets made
// durable; compaction keeping what is open.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { contentDigest, ExactlyOnceLedger } from '../../src/audit/exactly-once/exactly-once-ledger.ts';
import { AuditLog } from '../../src/audit/log/audit-log.ts';

const tmp = () => mkdtempSync(join(tmpdir(), 'sluice-ledger-'));
const worker = 'w-1-commands';

function command(packetId: number, body: string, who = worker) {
  return {
    receivedAt: new Date().toISOString(),
    topic: 'acme/s/z/valve/v-1/command',
    levels: {},
    qos: 2,
    retain: false,
    packetId,
    worker: who,
    properties: {},
    payload: Buffer.from(body).toString('base64'),
  };
}
const digest = (body: string) => contentDigest('acme/s/z/valve/v-1/command', Buffer.from(body));

/** Opens the log and the ledger as the worker does at start. */
async function start(dir: string, compactEvery?: number) {
  const log = await AuditLog.open(dir);
  const ledger = await ExactlyOnceLedger.open(dir, worker, { auditHead: () => log.lastSeq, ...(compactEvery ? { compactEvery } : {}) });
  const record = (packetId: number, body: string) => ledger.recording(packetId, digest(body), log.append(command(packetId, body)));
  return {
    log,
    ledger,
    record,
    stop: async () => {
      await ledger.close();
      await log.close();
    },
  };
}

test("a recorded id is known until released, also after a crash; another worker's records are not ours", async () => {
  const dir = tmp();
  const a = await start(dir);
  assert.equal(await a.record(1, 'open'), 1);
  assert.equal(await a.record(2, 'close'), 2);
  await a.log.append(command(3, 'other', 'someone-else'));
  await a.ledger.release(1);
  // "crash": nothing closed, the next process opens the same files
  const b = await start(dir);
  assert.equal(b.ledger.size, 1, 'only id 2 is open');
  assert.equal(await b.ledger.recorded(2, digest('close')), 2, 'a redelivery of id 2 resolves to its record');
  assert.equal(b.ledger.recorded(1, digest('open')), undefined, 'id 1 was released: a new message may use it');
  assert.equal(b.ledger.recorded(2, digest('something else')), undefined, 'same id, other content: not a redelivery');
  assert.equal(b.ledger.heldForOther(2, digest('something else')), true);
  await b.stop();
});

test('a release resolves only once durable, and a resent PUBREL is answered at once', async () => {
  const dir = tmp();
  const a = await start(dir);
  await a.record(5, 'x');
  const released = a.ledger.release(5);
  assert.equal(a.ledger.release(5), released, 'the same release while in progress');
  await released;
  assert.equal(a.ledger.size, 0);
  await a.ledger.release(5); // unknown now: nothing to write
  await a.stop();
  const b = await start(dir);
  assert.equal(b.ledger.size, 0, 'the release survived the restart');
  await b.stop();
});

test('a lost session voids every open id durably, and holds new messages until then', async () => {
  const dir = tmp();
  const a = await start(dir);
  await a.record(1, 'x');
  const pending = a.record(2, 'y'); // still being written when the session is lost
  a.ledger.sessionLost();
  const gate = a.ledger.gate();
  assert.ok(gate, 'no message may be taken until the reset is durable');
  await pending;
  await gate;
  assert.equal(a.ledger.gate(), undefined);
  assert.equal(a.ledger.size, 0);
  assert.equal(await a.record(1, 'x'), 3, 'the same id and content in the new session is a new command');
  const b = await start(dir);
  assert.equal(b.ledger.size, 1, "after a restart only the new session's id is open");
  assert.equal(await b.ledger.recorded(1, digest('x')), 3);
  await b.stop();
});

test('compaction keeps every open id, including ones whose record is still being written', async () => {
  const dir = tmp();
  const a = await start(dir, 5);
  for (let i = 1; i <= 30; i++) {
    await a.record(i, `c${i}`);
    if (i % 3 !== 0) await a.ledger.release(i); // every third stays open
  }
  const inFlight = a.record(31, 'c31');
  await a.ledger.release(1); // a no-op journal touch while 31 is being written
  await inFlight;
  const b = await start(dir);
  assert.deepEqual(
    [...Array(31).keys()].map((i) => i + 1).filter((id) => b.ledger.recorded(id, digest(`c${id}`)) !== undefined),
    [3, 6, 9, 12, 15, 18, 21, 24, 27, 30, 31],
  );
  await b.stop();
});

test('released records stay in the history for a rolled-back broker: across a crash and a compaction, bounded by entries and age, voided by a session loss', async () => {
  const dir = tmp();
  let now = 1_000_000;
  const open = async (compactEvery?: number) => {
    const log = await AuditLog.open(dir);
    const ledger = await ExactlyOnceLedger.open(dir, worker, {
      auditHead: () => log.lastSeq,
      releasedHistory: { maxEntries: 3, maxAgeMs: 60_000 },
      now: () => now,
      ...(compactEvery ? { compactEvery } : {}),
    });
    const record = (packetId: number, body: string) => ledger.recording(packetId, digest(body), log.append(command(packetId, body)));
    return {
      log,
      ledger,
      record,
      stop: async () => {
        await ledger.close();
        await log.close();
      },
    };
  };
  const a = await open();
  assert.equal(await a.record(1, 'open'), 1);
  await a.ledger.release(1);
  assert.equal(a.ledger.releasedRecord(1, digest('open')), 1, 'released: the DUP redelivery resolves to record 1');
  assert.equal(a.ledger.releasedRecord(1, digest('close')), undefined, 'same id, other content: a new message');
  assert.equal(a.ledger.recorded(1, digest('open')), undefined, 'no longer open (a non-DUP PUBLISH with id 1 is new)');
  // "crash": the next process finds the history in the journal
  const b = await open();
  assert.equal(b.ledger.releasedRecord(1, digest('open')), 1, 'the history survived the crash');
  for (const [id, body] of [
    [2, 'b'],
    [3, 'c'],
    [4, 'd'],
  ] as const) {
    await b.record(id, body);
    await b.ledger.release(id);
  }
  assert.equal(b.ledger.releasedSize, 3, 'bounded by entries');
  assert.equal(b.ledger.releasedRecord(1, digest('open')), undefined, 'the oldest went first');
  await b.stop();
  // a compaction (every entry) keeps the history in the snapshot
  const c = await open(1);
  await c.record(5, 'e');
  await c.ledger.release(5);
  await c.stop();
  const d = await open();
  assert.deepEqual(
    [3, 4, 5].map((id) => d.ledger.releasedRecord(id, digest(String.fromCharCode(96 + id)))),
    [3, 4, 5],
    'after compaction and restart',
  );
  d.ledger.sessionLost();
  assert.equal(d.ledger.releasedSize, 0, 'a broker without our session has nothing to send again');
  await d.ledger.gate();
  await d.stop();
  const e = await open();
  assert.equal(e.ledger.releasedSize, 0, 'the reset is durable');
  await e.record(6, 'f');
  await e.ledger.release(6);
  now += 61_000;
  assert.equal(e.ledger.releasedRecord(6, digest('f')), undefined, 'bounded by age');
  await e.stop();
});
