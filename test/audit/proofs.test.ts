// Merkle tree heads in signed checkpoints, inclusion and consistency proofs: made by sluice,
// checked by sluice and by an independent checker written from docs/audit-log.md alone.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync, sign } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { AuditLog } from '../../src/audit/log/audit-log.ts';
import { type CheckpointRecord, encodeFrame, genesis, keyId, segmentFiles, segmentMagic, segmentName, sha256Hex } from '../../src/audit/log/format.ts';
import { LeafHashes, leafHash } from '../../src/audit/log/merkle.ts';
import { checkProof, proveConsistency, proveInclusion } from '../../src/audit/tools/prove.ts';
import { verifyAuditLog } from '../../src/audit/tools/verify.ts';
import { testCommand } from './commands.ts';
import { independentlyValid } from './proof-verifier.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const cli = (...args: string[]) => spawnSync(join(root, 'scripts/node'), [join(root, 'src/cli.ts'), ...args], { encoding: 'utf8' });
const tmp = () => mkdtempSync(join(tmpdir(), 'sluice-proofs-'));
const keys = generateKeyPairSync('ed25519');
const other = generateKeyPairSync('ed25519');
const command = (i: number) => testCommand(i);

/** Commands one by one, a checkpoint after every `every`; `restarts` times closed and reopened on the way. */
async function signedLog(dir: string, commands: number, every: number, restarts = 0): Promise<void> {
  const signing = { privateKey: keys.privateKey, publicKey: keys.publicKey, every, everyMs: 3_600_000 };
  let log = await AuditLog.open(dir, { signing });
  for (let i = 1; i <= commands; i++) {
    await log.append(command(i));
    if (restarts > 0 && i % Math.ceil(commands / (restarts + 1)) === 0) {
      await log.close();
      log = await AuditLog.open(dir, { signing });
    }
  }
  await log.close();
}

function records(dir: string): Array<Record<string, any>> {
  const out: Array<Record<string, any>> = [];
  for (const f of segmentFiles(dir)) {
    const bytes = readFileSync(join(dir, f));
    for (let o = segmentMagic.length; o < bytes.length; ) {
      const len = bytes.readUInt32BE(o);
      out.push(JSON.parse(bytes.subarray(o + 8, o + 8 + len).toString()));
      o += 8 + len;
    }
  }
  return out;
}

const checkpointSeqs = (dir: string) =>
  records(dir)
    .filter((r) => r.type === 'checkpoint')
    .map((r) => r.seq as number);

test('checkpoints sign the Merkle tree head of every record before them, also across restarts; verify recomputes each', async () => {
  const dir = tmp();
  await signedLog(dir, 95, 10, 3);
  const cps = records(dir).filter((r) => r.type === 'checkpoint') as CheckpointRecord[];
  assert.ok(cps.length >= 8, `${cps.length} checkpoints`);
  for (const c of cps) {
    assert.equal(c.treeSize, c.seq - 1);
    assert.match(c.treeHead ?? '', /^[0-9a-f]{64}$/);
  }
  const result = verifyAuditLog(dir, { publicKey: keys.publicKey });
  assert.equal(result.ok, true, result.problem?.message);
  assert.equal(result.checkpoints, cps.length);
});

test('inclusion proofs for every record and consistency proofs for every pair of checkpoints hold, for sluice and for the independent checker', async () => {
  const dir = tmp();
  await signedLog(dir, 60, 7, 1);
  const cps = checkpointSeqs(dir);
  const last = cps.at(-1) as number;
  let checked = 0;
  for (let seq = 1; seq < last; seq++) {
    const proof = proveInclusion(dir, seq, { publicKey: keys.publicKey });
    assert.equal(proof.checkpoint.seq, last, 'the newest checkpoint by default');
    assert.deepEqual(checkProof(proof, keys.publicKey).ok, true, `record ${seq}`);
    assert.ok(independentlyValid(proof, keys.publicKey), `independent: record ${seq}`);
    checked++;
  }
  const early = proveInclusion(dir, 3, { checkpoint: cps[0] as number });
  assert.equal(early.checkpoint.treeSize, (cps[0] as number) - 1);
  assert.ok(independentlyValid(early, keys.publicKey));
  for (const [i, a] of cps.entries()) {
    for (const b of cps.slice(i + 1)) {
      const proof = proveConsistency(dir, a, b);
      assert.equal(checkProof(proof, keys.publicKey).ok, true, `${a} -> ${b}`);
      assert.ok(independentlyValid(proof, keys.publicKey), `independent: ${a} -> ${b}`);
      checked++;
    }
  }
  assert.ok(checked > 80, `${checked} proofs`);
});

test('an altered record, path or tree head, another key, or a fork re-signed with the same key: no proof holds', async () => {
  const dir = tmp();
  await signedLog(dir, 40, 8);
  const cps = checkpointSeqs(dir);
  const proof = proveInclusion(dir, 12, { publicKey: keys.publicKey });
  const both = (p: unknown) => ({ sluice: checkProof(p, keys.publicKey), independent: independentlyValid(p as Record<string, any>, keys.publicKey) });

  const record = JSON.parse(Buffer.from(proof.record, 'base64').toString());
  const edited = {
    ...proof,
    record: Buffer.from(JSON.stringify({ ...record, payload: Buffer.from('{"command":"open"}').toString('base64') })).toString('base64'),
  };
  assert.equal((both(edited).sluice as { kind: string }).kind, 'proof');
  assert.equal(both(edited).independent, false);
  const path = [...proof.path];
  path[1] = sha256Hex(Buffer.from('x'));
  assert.equal((both({ ...proof, path }).sluice as { kind: string }).kind, 'proof');
  assert.equal(both({ ...proof, path }).independent, false);
  assert.equal(both({ ...proof, seq: 13 }).independent, false);
  assert.equal((both({ ...proof, seq: 13 }).sluice as { kind: string }).kind, 'proof');
  const head = { ...proof, checkpoint: { ...proof.checkpoint, treeHead: sha256Hex(Buffer.from('y')) } };
  assert.equal((both(head).sluice as { kind: string }).kind, 'signature');
  assert.equal(both(head).independent, false);
  assert.equal((checkProof(proof, other.publicKey) as { kind: string }).kind, 'signature');
  assert.equal(independentlyValid(proof, other.publicKey), false);

  // a fork: record 12 rewritten, the chain and the tree recomputed, every checkpoint re-signed with the same key
  const fork = tmp();
  writeForkedLog(dir, fork, 12);
  assert.equal(verifyAuditLog(fork, { publicKey: keys.publicKey }).ok, true, 'the fork verifies on its own: only a checkpoint kept outside can tell');
  const before = cps.find((c) => c < 12) as number;
  const after = cps.find((c) => c > 13) as number;
  const last = cps.at(-1) as number;
  const forked = proveConsistency(fork, after, last);
  assert.ok(both(forked).independent && both(forked).sluice.ok, 'within the fork, its own checkpoints agree');
  // an auditor who kept the original checkpoint after the rewrite: the fork cannot prove it extends it
  const kept = proveConsistency(dir, after, last).first;
  const claim = { ...forked, first: kept };
  assert.equal((both(claim).sluice as { kind: string }).kind, 'proof');
  assert.equal(both(claim).independent, false);
  // one who kept only a checkpoint from before the rewrite cannot tell: the window anchors bound
  const early = { ...proveConsistency(fork, before, last), first: proveConsistency(dir, before, last).first };
  assert.ok(both(early).independent && both(early).sluice.ok);
});

test('sluice audit prove and check-proof: JSON out, exit codes; a log with checkpoints from before trees still verifies, and the writer goes on with trees', async () => {
  const dir = tmp();
  // a log as builds before trees wrote it: checkpoints sign only seq and prev
  let prev = genesis;
  const frames: Buffer[] = [];
  for (let seq = 1; seq <= 12; seq++) {
    const rec =
      seq % 6 === 0
        ? {
            v: 1,
            type: 'checkpoint',
            seq,
            prev,
            at: new Date().toISOString(),
            signature: sign(null, Buffer.from(`sluice-audit-checkpoint\n${seq}\n${prev}\n`), keys.privateKey).toString('base64'),
            keyId: keyId(keys.publicKey),
          }
        : { v: 1, type: 'command', seq, prev, ...command(seq) };
    const body = Buffer.from(JSON.stringify(rec));
    frames.push(encodeFrame(body));
    prev = sha256Hex(body);
  }
  writeFileSync(join(dir, segmentName(1)), Buffer.concat([segmentMagic, ...frames]));
  const pub = join(tmp(), 'audit-signing.pub');
  writeFileSync(pub, keys.publicKey.export({ type: 'spki', format: 'pem' }));
  assert.match(cli('audit', 'verify', dir, '--public-key', pub).stdout, /^ok: 12 records/);
  const none = cli('audit', 'prove', dir, '3');
  assert.equal(none.status, 1);
  assert.match(none.stderr, /no checkpoint with a tree head/);

  // the writer reads the old log through once, then its checkpoints carry trees
  const log = await AuditLog.open(dir, { signing: { privateKey: keys.privateKey, publicKey: keys.publicKey, every: 5, everyMs: 3_600_000 } });
  for (let i = 13; i <= 22; i++) await log.append(command(i));
  await log.close();
  assert.match(cli('audit', 'verify', dir, '--public-key', pub).stdout, /^ok: 24 records \(20 commands, 4 checkpoints\)/);

  const proved = cli('audit', 'prove', dir, '4', '--public-key', pub);
  assert.equal(proved.status, 0, proved.stderr);
  const proof = JSON.parse(proved.stdout);
  assert.equal(proof.type, 'inclusion');
  assert.ok(independentlyValid(proof, keys.publicKey), 'a record written before trees is proven in the later tree');
  const file = join(tmp(), 'proof.json');
  writeFileSync(file, proved.stdout);
  const ok = cli('audit', 'check-proof', file, '--public-key', pub);
  assert.equal(ok.status, 0, ok.stdout + ok.stderr);
  assert.match(ok.stdout, /^ok: record 4 is in the tree of 23 records signed by checkpoint 24/);
  writeFileSync(file, JSON.stringify({ ...proof, path: proof.path.slice(1) }));
  const bad = cli('audit', 'check-proof', file, '--public-key', pub);
  assert.equal(bad.status, 5);
  assert.match(bad.stdout, /^FAIL proof: record 4 is not in the tree of checkpoint 24/);
  writeFileSync(file, '{"hello": 1}');
  assert.equal(cli('audit', 'check-proof', file, '--public-key', pub).status, 2);
  assert.equal(cli('audit', 'check-proof', file).status, 2, '--public-key is required');
  const later = cli('audit', 'prove', dir, '24');
  assert.equal(later.status, 1);
  assert.match(later.stderr, /record 24 came after checkpoint 24|record 24 is not/);
  const consistency = cli('audit', 'prove', dir, '--consistency', '18', '24');
  assert.equal(consistency.status, 0, consistency.stderr);
  assert.ok(independentlyValid(JSON.parse(consistency.stdout), keys.publicKey));
  assert.equal(cli('audit', 'prove', dir, '--consistency', '6', '24').status, 1, 'checkpoint 6 has no tree');
});

/** `from`'s log with record `seq`'s payload changed, every hash, tree head and signature made again: what a key holder could forge. */
function writeForkedLog(from: string, to: string, seq: number): void {
  const leaves = new LeafHashes();
  let prev = genesis;
  const frames: Buffer[] = [];
  for (const r of records(from)) {
    const rec: Record<string, any> = { ...r, prev };
    if (rec.seq === seq) rec.payload = Buffer.from('{"command":"open-all"}').toString('base64');
    if (rec.type === 'checkpoint') {
      const head = leaves.head(0, leaves.size).toString('hex');
      rec.treeHead = head;
      delete rec.frontier;
      rec.signature = sign(null, Buffer.from(`sluice-audit-checkpoint-2\n${rec.seq}\n${prev}\n${rec.treeSize}\n${head}\n`), keys.privateKey).toString('base64');
      rec.keyId = keyId(keys.publicKey);
    }
    const body = Buffer.from(JSON.stringify(rec));
    frames.push(encodeFrame(body));
    leaves.push(leafHash(body));
    prev = sha256Hex(body);
  }
  writeFileSync(join(to, segmentName(1)), Buffer.concat([segmentMagic, ...frames]));
}
