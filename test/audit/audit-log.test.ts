// The audit log on disk: group commit, rotation, restart; and every way a record can be
// damaged or tampered with, each detected with its kind and exit code.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { appendFileSync, cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { AuditFatalError, AuditLog } from '../../src/audit/log/audit-log.ts';
import { crc32c } from '../../src/audit/log/crc32c.ts';
import { encodeFrame, frameHeaderBytes, genesis, segmentFiles, segmentMagic, segmentName, sha256Hex } from '../../src/audit/log/format.ts';
import { leafHash, MerkleFrontier } from '../../src/audit/log/merkle.ts';
import { exitCodes, repairTail, verifyAuditLog } from '../../src/audit/tools/verify.ts';
import { testCommand } from './commands.ts';

const tmp = () => mkdtempSync(join(tmpdir(), 'sluice-audit-'));
const keys = generateKeyPairSync('ed25519');
const command = (i: number, payload?: Buffer) => testCommand(i, payload ? { payload: payload.toString('base64') } : {});

async function writeLog(dir: string, n: number, options: Parameters<typeof AuditLog.open>[1] = {}, oneByOne = false) {
  const log = await AuditLog.open(dir, options);
  let syncs = 0;
  log.onSync = () => syncs++;
  const seqs: number[] = [];
  if (oneByOne) for (let i = 0; i < n; i++) seqs.push(await log.append(command(i + 1)));
  else seqs.push(...(await Promise.all(Array.from({ length: n }, (_, i) => log.append(command(i + 1))))));
  await log.close();
  return { seqs, syncs };
}

interface RawFrame {
  body: Buffer;
}
function framesOf(file: string): RawFrame[] {
  const bytes = readFileSync(file);
  const out: RawFrame[] = [];
  for (let o = segmentMagic.length; o < bytes.length; ) {
    const len = bytes.readUInt32BE(o);
    out.push({ body: bytes.subarray(o + frameHeaderBytes, o + frameHeaderBytes + len) });
    o += frameHeaderBytes + len;
  }
  return out;
}
const writeFrames = (file: string, frames: readonly RawFrame[]) =>
  writeFileSync(file, Buffer.concat([segmentMagic, ...frames.map((f) => encodeFrame(f.body))]));
const onlySegment = (dir: string) => join(dir, segmentFiles(dir).find((f) => framesOf(join(dir, f)).length > 0) as string);

test('concurrent appends are group-committed, numbered 1..n, chained, and verify', async () => {
  const dir = tmp();
  const { seqs, syncs } = await writeLog(dir, 200);
  assert.deepEqual(
    seqs,
    Array.from({ length: 200 }, (_, i) => i + 1),
  );
  assert.ok(syncs < 200, `${syncs} fsyncs for 200 records: group commit`);
  const r = verifyAuditLog(dir);
  assert.equal(r.ok, true, r.problem?.message);
  assert.equal(r.commands, 200);
  const first = framesOf(onlySegment(dir))[0]?.body;
  const rec = JSON.parse(first?.toString() ?? '{}');
  assert.equal(rec.prev, genesis);
  assert.equal(Buffer.from(rec.payload, 'base64').toString(), '{"command":"set-point","value":1}');
});

test('segments rotate by size; a reopened log continues the chain in a new segment', async () => {
  const dir = tmp();
  await writeLog(dir, 50, { segmentBytes: 4_000 }, true);
  await writeLog(dir, 30, { segmentBytes: 4_000 }, true);
  assert.ok(segmentFiles(dir).length > 3);
  const r = verifyAuditLog(dir);
  assert.equal(r.ok, true, r.problem?.message);
  assert.equal(r.lastSeq, 80);
});

test('binary payloads and 256 KiB commands are recorded byte for byte', async () => {
  const dir = tmp();
  const log = await AuditLog.open(dir);
  const big = Buffer.alloc(256 * 1024, 7);
  const binary = Buffer.from([0, 0xff, 0xfe, 0x80, 0x0a]);
  await log.append(command(1, big));
  await log.append(command(2, binary));
  await log.close();
  const payloads: Buffer[] = [];
  assert.equal(verifyAuditLog(dir, { onFrame: (f) => f.record.type === 'command' && payloads.push(Buffer.from(f.record.payload, 'base64')) }).ok, true);
  assert.ok(payloads[0]?.equals(big));
  assert.ok(payloads[1]?.equals(binary));
});

test('a torn last record (crash mid-write) is told apart, and only it is cut', async () => {
  const dir = tmp();
  await writeLog(dir, 10);
  const file = onlySegment(dir);
  const good = readFileSync(file).length;
  const torn = encodeFrame(Buffer.from('{"v":1,"type":"command","seq":11}')).subarray(0, 20);
  appendFileSync(file, torn);
  const r = verifyAuditLog(dir);
  assert.equal(r.problem?.kind, 'torn-tail');
  assert.equal(exitCodes[r.problem.kind], 3);
  assert.equal(r.problem.offset, good);
  assert.equal(repairTail(dir, r.problem), torn.length);
  assert.equal(readFileSync(file).length, good);
  assert.equal(verifyAuditLog(dir).ok, true);

  // the writer repairs its own torn tail at open, and continues at 11
  appendFileSync(file, torn);
  let repaired = 0;
  const log = await AuditLog.open(dir, { onRepair: (_s, bytes) => (repaired = bytes) });
  assert.equal(repaired, torn.length);
  assert.equal(await log.append(command(11)), 11);
  await log.close();
  assert.equal(verifyAuditLog(dir).ok, true);
});

test('tampering is detected: flipped byte, deleted, inserted, swapped, edited with a fixed CRC', async () => {
  const base = tmp();
  await writeLog(base, 10);
  const cases: Array<[string, (frames: RawFrame[], file: string) => void, string, number]> = [
    [
      'flip a byte',
      (_f, file) => {
        const b = readFileSync(file);
        const i = b.length - 40;
        b[i] = (b[i] as number) ^ 0x01;
        writeFileSync(file, b);
      },
      'corrupt',
      4,
    ],
    [
      'delete record 5',
      (f, file) =>
        writeFrames(
          file,
          f.filter((_, i) => i !== 4),
        ),
      'missing',
      5,
    ],
    ['insert a copy of record 5', (f, file) => writeFrames(file, [...f.slice(0, 5), f[4] as RawFrame, ...f.slice(5)]), 'inserted', 5],
    ['swap records 4 and 5', (f, file) => writeFrames(file, [...f.slice(0, 3), f[4] as RawFrame, f[3] as RawFrame, ...f.slice(5)]), 'reordered', 5],
    [
      'edit a payload and fix its CRC',
      (f, file) => {
        const rec = JSON.parse((f[5] as RawFrame).body.toString());
        rec.payload = Buffer.from('{"command":"open-all-valves"}').toString('base64');
        f[5] = { body: Buffer.from(JSON.stringify(rec)) };
        writeFrames(file, f); // encodeFrame computes a fresh, valid CRC
      },
      'chain',
      5,
    ],
  ];
  for (const [what, tamper, kind, code] of cases) {
    const dir = tmp();
    cpSync(base, dir, { recursive: true });
    const file = onlySegment(dir);
    tamper(framesOf(file), file);
    const r = verifyAuditLog(dir);
    assert.equal(r.problem?.kind, kind, `${what}: ${r.problem?.message}`);
    assert.equal(exitCodes[r.problem.kind], code, what);
    assert.ok(r.problem.segment && r.problem.seq > 0, `${what}: says where`);
  }
});

test('a tail rewritten with recomputed hashes passes the chain but not the signed checkpoints', async () => {
  const dir = tmp();
  const signing = { privateKey: keys.privateKey, publicKey: keys.publicKey, every: 5, everyMs: 60_000 };
  const log = await AuditLog.open(dir, { signing });
  for (let i = 1; i <= 20; i++) await log.append(command(i)); // one by one: a checkpoint after every 5
  await log.close();
  assert.equal(verifyAuditLog(dir, { publicKey: keys.publicKey }).ok, true);

  // rewrite command 7 and recompute every later hash, keeping the old signatures
  const file = onlySegment(dir);
  const frames = framesOf(file);
  const rewrite = (treeHeadsToo: boolean) => {
    let prev = genesis;
    const tree = new MerkleFrontier();
    return frames.map((f) => {
      const rec = JSON.parse(f.body.toString());
      if (rec.seq === 7) rec.payload = Buffer.from('{"command":"forged"}').toString('base64');
      rec.prev = prev;
      if (treeHeadsToo && rec.type === 'checkpoint') {
        rec.treeHead = tree.head().toString('hex');
        rec.frontier = tree.toHex();
      }
      const body = Buffer.from(JSON.stringify(rec));
      prev = sha256Hex(body);
      tree.append(leafHash(body));
      return { body };
    });
  };
  writeFrames(file, rewrite(false));
  assert.equal(verifyAuditLog(dir).problem?.kind, 'chain', "the checkpoints' tree heads no longer match: seen without a key");
  writeFrames(file, rewrite(true));
  const unsigned = verifyAuditLog(dir);
  assert.equal(unsigned.ok, true, 'without a key, a consistent rewrite (tree heads too) cannot be seen: that is what signed checkpoints are for');
  const signed = verifyAuditLog(dir, { publicKey: keys.publicKey });
  assert.equal(signed.problem?.kind, 'signature');
  assert.equal(exitCodes.signature, 6);
  assert.match(signed.problem?.message ?? '', /checkpoint/);
});

test('a damaged frame with records after it is never truncated away: the writer refuses the log', async () => {
  const dir = tmp();
  await writeLog(dir, 5);
  const file = onlySegment(dir);
  const b = readFileSync(file);
  const at = segmentMagic.length + frameHeaderBytes + 3; // inside record 1's body
  b[at] = (b[at] as number) ^ 0xff;
  writeFileSync(file, b);
  await assert.rejects(AuditLog.open(dir), AuditFatalError);
  assert.equal(readFileSync(file).length, b.length, 'nothing cut');
});

test('a failed write is fatal: the caller is told, later appends are refused, nothing is retried', async () => {
  const dir = tmp();
  let fatal: Error | undefined;
  const log = await AuditLog.open(dir, { onFatal: (e) => (fatal = e) });
  await log.append(command(1));
  await (log as unknown as { handle: { close(): Promise<void> } }).handle.close(); // the disk "goes away"
  await assert.rejects(log.append(command(2)), AuditFatalError);
  assert.ok(fatal instanceof AuditFatalError);
  await assert.rejects(log.append(command(3)), /never retried/);
  void crc32c;
});

test('sluice audit verify: messages and exit codes; --repair-tail cuts the torn record only', async () => {
  const { spawnSync } = await import('node:child_process');
  const root = join(import.meta.dirname, '../..');
  const cli = (...args: string[]) => spawnSync(join(root, 'scripts/node'), [join(root, 'src/cli.ts'), ...args], { encoding: 'utf8' });
  const dir = tmp();
  await writeLog(dir, 12);
  let r = cli('audit', 'verify', dir);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^ok: 12 records \(12 commands, 0 checkpoints\)/);
  appendFileSync(onlySegment(dir), Buffer.from([0, 0, 1, 0, 1, 2]));
  r = cli('audit', 'verify', dir);
  assert.equal(r.status, 3);
  assert.match(r.stdout, /FAIL torn-tail: \d{20}\.audit offset \d+, at seq 13/);
  r = cli('audit', 'verify', dir, '--repair-tail');
  assert.equal(r.status, 0, r.stdout);
  assert.match(r.stdout, /repaired: cut 6 bytes/);
  const metricsFile = join(tmp(), 'audit.prom');
  r = cli('audit', 'verify', dir, '--metrics-file', metricsFile);
  assert.equal(r.status, 0);
  const prom = readFileSync(metricsFile, 'utf8');
  assert.match(prom, /sluice_audit_check_ok\{command="verify",dir="[^"]+"\} 1/);
  assert.match(prom, /sluice_audit_check_commands\{command="verify",dir="[^"]+"\} 12/);
  // truncated in the middle of a record: the last segment reads as cut short (exit 3), an
  // earlier one as corrupt (exit 4): a cut can be a crash only at the very end of the log
  const cut = tmp();
  cpSync(dir, cut, { recursive: true });
  const file = onlySegment(cut);
  writeFileSync(file, readFileSync(file).subarray(0, readFileSync(file).length - 30));
  r = cli('audit', 'verify', cut, '--metrics-file', metricsFile);
  assert.equal(r.status, 3);
  assert.match(r.stdout, /FAIL torn-tail: .* at seq 12: the last frame is cut short/);
  assert.match(readFileSync(metricsFile, 'utf8'), /sluice_audit_check_problem\{command="verify",dir="[^"]+",kind="torn-tail"\} 1/);
  writeFileSync(join(cut, segmentName(1_000_000)), segmentMagic); // a later segment: the cut is now inside the log
  r = cli('audit', 'verify', cut);
  assert.equal(r.status, 4);
  assert.match(r.stdout, /FAIL corrupt: .* at seq 12: a frame runs past the end of its segment/);
  const keyDir = tmp();
  assert.equal(cli('audit', 'keygen', keyDir).status, 0);
  r = cli('audit', 'verify', dir, '--public-key', join(keyDir, 'audit-signing.pub'));
  assert.equal(r.status, 6, 'a key was given but nothing is signed');
});

test("one writer per directory: a live writer's lock refuses a second one and a tail repair; a dead one's is taken over", async () => {
  const { spawn, spawnSync } = await import('node:child_process');
  const root = join(import.meta.dirname, '../..');
  const cli = (...args: string[]) => spawnSync(join(root, 'scripts/node'), [join(root, 'src/cli.ts'), ...args], { encoding: 'utf8' });
  const dir = tmp();
  await writeLog(dir, 3);
  // another live process "writes" the log
  const other = spawn('sleep', ['30']);
  try {
    writeFileSync(join(dir, 'writer.pid'), `${other.pid}\n`);
    await assert.rejects(AuditLog.open(dir), /being written by process \d+: one writer per directory/);
    appendFileSync(onlySegment(dir), Buffer.from([0, 0, 1, 0, 9]));
    const size = readFileSync(onlySegment(dir)).length;
    const r = cli('audit', 'verify', dir, '--repair-tail');
    assert.equal(r.status, 3);
    assert.match(r.stdout, /refusing to repair: process \d+ is writing this log/);
    assert.equal(readFileSync(onlySegment(dir)).length, size, 'nothing cut under a live writer');
  } finally {
    other.kill();
  }
  await new Promise((r) => other.once('exit', r));
  // its writer is gone (as after a SIGKILL): the lock is taken over, the torn tail cut at open
  const log = await AuditLog.open(dir);
  assert.equal(await log.append(command(4)), 4);
  await log.close();
  assert.equal(verifyAuditLog(dir).ok, true);
});
