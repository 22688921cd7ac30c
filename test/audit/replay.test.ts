// `sluice audit replay` to JSON lines: the selection (sequence, time, topic filter), the bodies
// exactly as stored, and a tampered log refused unless --force (which reads on past the damage).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { AuditLog } from '../../src/audit/log/audit-log.ts';
import { frameHeaderBytes, segmentFiles, segmentMagic } from '../../src/audit/log/format.ts';
import { parseBound } from '../../src/audit/tools/replay.ts';

const root = join(import.meta.dirname, '../..');
const cli = (...args: string[]) => spawnSync(join(root, 'scripts/node'), [join(root, 'src/cli.ts'), ...args], { encoding: 'utf8' });

async function logOf(n: number): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-replay-'));
  const log = await AuditLog.open(dir);
  for (let i = 1; i <= n; i++) {
    await log.append({
      receivedAt: new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString(),
      topic: `acme/site/z/${i % 2 === 0 ? 'valve' : 'pump'}/d-${i}/command`,
      levels: { deviceId: `d-${i}` },
      qos: 2,
      retain: false,
      packetId: i,
      worker: 'w',
      properties: {},
      payload: Buffer.from(`cmd ${i}`).toString('base64'),
    });
  }
  await log.close();
  return dir;
}

const lines = (stdout: string) =>
  stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { seq: number; topic: string; payload: string });

test('replay to JSON lines: every command, in order, each body exactly as stored', async () => {
  const dir = await logOf(20);
  const r = cli('audit', 'replay', dir);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr, '', 'quiet when piped');
  const out = lines(r.stdout);
  assert.deepEqual(
    out.map((x) => x.seq),
    Array.from({ length: 20 }, (_, i) => i + 1),
  );
  // the stored body, byte for byte: the first frame's body is the first line
  const seg = readFileSync(join(dir, segmentFiles(dir)[0] as string));
  const len = seg.readUInt32BE(segmentMagic.length);
  const body = seg.subarray(segmentMagic.length + frameHeaderBytes, segmentMagic.length + frameHeaderBytes + len).toString();
  assert.equal(r.stdout.split('\n')[0], body);
});

test('replay selects by sequence, by time and by topic filter', async () => {
  const dir = await logOf(20);
  assert.deepEqual(
    lines(cli('audit', 'replay', dir, '--from', '5', '--to', '8').stdout).map((x) => x.seq),
    [5, 6, 7, 8],
  );
  assert.deepEqual(
    lines(cli('audit', 'replay', dir, '--from', '2026-01-01T00:00:18Z').stdout).map((x) => x.seq),
    [18, 19, 20],
  );
  assert.deepEqual(
    lines(cli('audit', 'replay', dir, '--topic', 'acme/+/+/valve/#', '--to', '6').stdout).map((x) => x.seq),
    [2, 4, 6],
  );
  const bad = cli('audit', 'replay', dir, '--from', 'yesterday');
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--from takes a sequence number or an ISO-8601 time/);
  assert.deepEqual(parseBound('42', 'x'), { seq: 42 });
});

test("a tampered log is refused with verify's exit code; --force replays what can be read and still says so", async () => {
  const dir = await logOf(10);
  const file = join(dir, segmentFiles(dir)[0] as string);
  const bytes = readFileSync(file);
  // flip a byte inside record 4's payload: its CRC fails
  let o = segmentMagic.length;
  for (let i = 1; i < 4; i++) o += frameHeaderBytes + bytes.readUInt32BE(o);
  bytes[o + frameHeaderBytes + 20] = (bytes[o + frameHeaderBytes + 20] as number) ^ 0x01;
  writeFileSync(file, bytes);
  const refused = cli('audit', 'replay', dir);
  assert.equal(refused.status, 4, 'corrupt');
  assert.equal(refused.stdout, '', 'nothing replayed');
  assert.match(refused.stderr, /refusing to replay: the log fails verification \(corrupt at \d{20}\.audit offset \d+, seq 4/);
  const forced = cli('audit', 'replay', dir, '--force');
  assert.equal(forced.status, 4, 'forced, and the exit code still tells the log is bad');
  assert.deepEqual(
    lines(forced.stdout).map((x) => x.seq),
    [1, 2, 3, 5, 6, 7, 8, 9, 10],
    'read on past the damaged record, which is not trusted',
  );
});
