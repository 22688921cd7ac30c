// Anchors: signed checkpoints kept by a witness outside the log. Each tamper a log cannot see on
// its own (cut short, restored from an older copy, deleted, rewritten and signed again) is
// caught by `sluice audit verify --anchors`, with its exit code; a witness that fails never
// holds a command.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync, sign } from 'node:crypto';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { AnchorPublisher, anchorOf, fileWitness, httpWitness, parseAnchors } from '../../src/audit/log/anchors.ts';
import { AuditLog } from '../../src/audit/log/audit-log.ts';
import { encodeFrame, genesis, keyId, segmentFiles, segmentMagic, sha256Hex } from '../../src/audit/log/format.ts';
import { leafHash, MerkleFrontier } from '../../src/audit/log/merkle.ts';
import { testCommand } from './commands.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const cli = (...args: string[]) => spawnSync(join(root, 'scripts/node'), [join(root, 'src/cli.ts'), ...args], { encoding: 'utf8' });
const tmp = () => mkdtempSync(join(tmpdir(), 'sluice-anchors-'));
const keys = generateKeyPairSync('ed25519');
/** ~350 B records: 4 KiB segments then hold a few each. */
const command = (i: number) =>
  testCommand(i, {
    worker: 'worker-a-commands',
    payload: Buffer.from(JSON.stringify({ command: 'set-point', value: i, pad: 'x'.repeat(200) })).toString('base64'),
  });

/** Appends commands from..to one by one (a checkpoint after every 5, segments of 4 KiB), anchoring each checkpoint in `anchorFile`. */
async function write(dir: string, anchorFile: string, from: number, to: number): Promise<void> {
  const anchors = new AnchorPublisher([fileWitness(anchorFile)], { published: () => {}, failed: (_, err) => assert.fail(err) }, { maxFailingMs: 60_000 });
  const log = await AuditLog.open(dir, {
    segmentBytes: 4096,
    signing: { privateKey: keys.privateKey, publicKey: keys.publicKey, every: 5, everyMs: 3_600_000 },
    onCheckpoint: (c) => anchors.publish(anchorOf(c, 'worker-a-commands')),
  });
  for (let i = from; i <= to; i++) await log.append(command(i));
  await log.close();
  await anchors.close();
}

function setup() {
  const base = tmp();
  const pub = join(base, 'audit-signing.pub');
  writeFileSync(pub, keys.publicKey.export({ type: 'spki', format: 'pem' }));
  return { dir: join(base, 'log'), anchors: join(base, 'witness', 'anchors.jsonl'), pub, base };
}

const verify = (dir: string, ...more: string[]) => {
  const r = cli('audit', 'verify', dir, ...more);
  return { code: r.status, out: r.stdout + r.stderr };
};

test('an intact log agrees with its anchors; the records after the newest anchor are said', async () => {
  const { dir, anchors, pub } = setup();
  await write(dir, anchors, 1, 40);
  const kept = parseAnchors(readFileSync(anchors, 'utf8'), anchors);
  assert.equal(kept.length, 8, 'one anchor per checkpoint');
  assert.deepEqual(
    kept.map((a) => a.seq),
    [6, 12, 18, 24, 30, 36, 42, 48],
  );
  assert.ok(kept.every((a) => a.worker === 'worker-a-commands' && a.treeSize === a.seq - 1));
  const r = verify(dir, '--public-key', pub, '--anchors', anchors);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /8 anchors of worker worker-a-commands agree \(the newest, checkpoint 48; 0 records after it not anchored yet\)/);
});

test('cut short: the newest segments removed verify on their own, and fail against the anchors (exit 8), naming the missing range', async () => {
  const { dir, anchors, pub } = setup();
  await write(dir, anchors, 1, 40);
  const segments = segmentFiles(dir);
  assert.ok(segments.length >= 4, `${segments.length} segments`);
  for (const s of segments.slice(-2)) rmSync(join(dir, s));
  const alone = verify(dir, '--public-key', pub);
  assert.equal(alone.code, 0, `without anchors a truncated log verifies: ${alone.out}`);
  const r = verify(dir, '--public-key', pub, '--anchors', anchors);
  assert.equal(r.code, 8, r.out);
  assert.match(r.out, /^FAIL truncated: anchors, at seq 48: the log ends at seq \d+, but checkpoint 48 was anchored .*: records \d+\.\.48 are missing/);
});

test('rolled back: an older copy of the directory restored fails against the anchors (exit 8)', async () => {
  const { dir, anchors, pub, base } = setup();
  await write(dir, anchors, 1, 20);
  const copy = join(base, 'copy');
  cpSync(dir, copy, { recursive: true });
  await write(dir, anchors, 21, 40);
  rmSync(dir, { recursive: true });
  cpSync(copy, dir, { recursive: true });
  assert.equal(verify(dir, '--public-key', pub).code, 0, 'the older copy verifies on its own');
  const r = verify(dir, '--public-key', pub, '--anchors', anchors);
  assert.equal(r.code, 8, r.out);
  assert.match(r.out, /FAIL truncated/);
});

test('deleted: no log is exit 7 with or without anchors, and the anchors say how far it went', async () => {
  const { dir, anchors } = setup();
  await write(dir, anchors, 1, 20);
  for (const s of segmentFiles(dir)) rmSync(join(dir, s));
  assert.equal(verify(dir).code, 7);
  const r = verify(dir, '--anchors', anchors);
  assert.equal(r.code, 7);
  assert.match(r.out, /FAIL no-log: .*; the anchors say it held records up to seq 24/);
});

test('forked: history rewritten after an anchored checkpoint and signed again with the same key verifies, and fails against the anchors (exit 9); a rewrite after the newest anchor is the window they cannot see', async () => {
  const { dir, anchors, pub } = setup();
  await write(dir, anchors, 1, 40);
  const original = join(dir, '..', 'original');
  cpSync(dir, original, { recursive: true });
  forge(original, dir, 20); // record 20: before checkpoints 24..48, all anchored
  assert.equal(verify(dir, '--public-key', pub).code, 0, 'the fork verifies on its own, signatures and tree heads included');
  const r = verify(dir, '--public-key', pub, '--anchors', anchors);
  assert.equal(r.code, 9, r.out);
  assert.match(r.out, /^FAIL fork: anchors, at seq 24: checkpoint 24 differs from the one anchored at/);

  const late = join(dir, '..', 'late');
  mkdirSync(late);
  await write(late, `${anchors}.late`, 1, 40);
  writeFileSync(`${anchors}.late`, readFileSync(`${anchors}.late`, 'utf8').split('\n').slice(0, 6).join('\n')); // the witness missed the last two
  const lateCopy = `${late}-original`;
  cpSync(late, lateCopy, { recursive: true });
  forge(lateCopy, late, 40); // after checkpoint 36, the newest anchored
  assert.equal(verify(late, '--public-key', pub, '--anchors', `${anchors}.late`).code, 0, 'a rewrite after the newest anchor is not seen');
});

test('a witness that fails never holds a command: it is retried, counted, and named once it has failed too long', async () => {
  const base = tmp();
  writeFileSync(join(base, 'not-a-dir'), 'x');
  let failures = 0;
  let published = 0;
  const anchors = new AnchorPublisher(
    [fileWitness(join(base, 'not-a-dir', 'anchors.jsonl'))],
    { published: () => published++, failed: () => failures++ },
    { maxFailingMs: 50, retryMs: 20 },
  );
  const log = await AuditLog.open(join(base, 'log'), {
    signing: { privateKey: keys.privateKey, publicKey: keys.publicKey, every: 2, everyMs: 3_600_000 },
    onCheckpoint: (c) => anchors.publish(anchorOf(c, 'w')),
  });
  const seqs: number[] = [];
  for (let i = 1; i <= 10; i++) seqs.push(await log.append(command(i)));
  assert.equal(seqs.length, 10, 'every command recorded while the witness fails');
  await new Promise((r) => setTimeout(r, 150));
  assert.ok(failures >= 2, `${failures} failures`);
  assert.equal(published, 0);
  assert.match(anchors.problems()[0] ?? '', /^audit anchors: the file witness has failed for \d+ s \(.*\): checkpoints after seq 0 are not anchored$/);
  await log.close();
  await anchors.close(100);
});

test('an HTTP witness: each anchor POSTed as JSON with the bearer token; refusals are retried until the newest is kept', async () => {
  const kept: Array<{ authorization: string | undefined; anchor: Record<string, unknown> }> = [];
  let refuse = 2;
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => {
      body += c.toString();
    });
    req.on('end', () => {
      if (refuse-- > 0) {
        res.writeHead(503).end();
        return;
      }
      kept.push({ authorization: req.headers.authorization, anchor: JSON.parse(body) });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/anchors`;
  let failures = 0;
  const anchors = new AnchorPublisher(
    [httpWitness(url, 'witness-token', 2_000)],
    { published: () => {}, failed: () => failures++ },
    { maxFailingMs: 60_000, retryMs: 20 },
  );
  const log = await AuditLog.open(join(tmp(), 'log'), {
    signing: { privateKey: keys.privateKey, publicKey: keys.publicKey, every: 3, everyMs: 3_600_000 },
    onCheckpoint: (c) => anchors.publish(anchorOf(c, 'w-commands')),
  });
  for (let i = 1; i <= 6; i++) await log.append(command(i));
  await log.close();
  await anchors.close(5_000);
  server.close();
  assert.equal(failures, 2, 'each refusal counted');
  assert.ok(kept.length >= 1);
  assert.ok(kept.every((k) => k.authorization === 'Bearer witness-token' && k.anchor.worker === 'w-commands'));
  assert.equal(kept.at(-1)?.anchor.seq, 8, 'the newest checkpoint is kept in the end');
});

/** A key holder's forgery: `from`'s log with record `seq` changed, every hash, tree head and signature made again, into `to`. */
function forge(from: string, to: string, seq: number): void {
  const tree = new MerkleFrontier();
  let prev = genesis;
  for (const f of segmentFiles(to)) rmSync(join(to, f));
  const frames: Buffer[] = [];
  for (const segment of segmentFiles(from)) {
    const bytes = readFileSync(join(from, segment));
    for (let o = segmentMagic.length; o < bytes.length; ) {
      const len = bytes.readUInt32BE(o);
      const rec = JSON.parse(bytes.subarray(o + 8, o + 8 + len).toString());
      o += 8 + len;
      rec.prev = prev;
      if (rec.seq === seq) rec.payload = Buffer.from('{"command":"open-all"}').toString('base64');
      if (rec.type === 'checkpoint') {
        rec.treeHead = tree.head().toString('hex');
        rec.frontier = tree.toHex();
        rec.signature = sign(null, Buffer.from(`sluice-audit-checkpoint-2\n${rec.seq}\n${prev}\n${rec.treeSize}\n${rec.treeHead}\n`), keys.privateKey).toString(
          'base64',
        );
        rec.keyId = keyId(keys.publicKey);
      }
      const body = Buffer.from(JSON.stringify(rec));
      frames.push(encodeFrame(body));
      tree.append(leafHash(body));
      prev = sha256Hex(body);
    }
  }
  writeFileSync(join(to, '00000000000000000001.audit'), Buffer.concat([segmentMagic, ...frames]));
}
