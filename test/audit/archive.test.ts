// The write-once archive against the stack's real S3 server (versitygw, Object Lock on): sealed
// segments are uploaded under COMPLIANCE retention; a delete of a locked version is refused (by
// the server, for the root user too); `sluice audit verify` and `replay` read a log from the
// archive alone, in the version first written even when a delete marker hides it or a later
// version covers it; a store that fails holds nothing and its backlog is uploaded later.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectRetentionCommand,
  ListObjectVersionsCommand,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { s3Client } from '../../deploy/local/servers/s3.ts';
import { type ArchiveEvents, SegmentArchiver, sha256OfFile } from '../../src/audit/archive/archiver.ts';
import { type S3Settings, S3Store } from '../../src/audit/archive/s3.ts';
import { AuditLog } from '../../src/audit/log/audit-log.ts';
import { segmentFiles } from '../../src/audit/log/format.ts';
import { verifyAuditLog } from '../../src/audit/tools/verify.ts';
import { config, endpoints, unique } from '../support/stack.ts';
import { testCommand } from './commands.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const bucket = config.s3.bucket;
const settings: S3Settings = {
  endpoint: endpoints.s3,
  region: 'us-east-1',
  forcePathStyle: true,
  credentials: { accessKeyId: config.s3.accessKeyId, secretAccessKey: config.s3.secretAccessKey },
};
/** The CLI, with the S3 connection as an operator gives it: the endpoint flag and the SDK's variables. */
const cli = (...args: string[]) =>
  spawnSync(join(root, 'scripts/node'), [join(root, 'src/cli.ts'), ...args, '--s3-endpoint', endpoints.s3], {
    encoding: 'utf8',
    env: { ...process.env, AWS_ACCESS_KEY_ID: config.s3.accessKeyId, AWS_SECRET_ACCESS_KEY: config.s3.secretAccessKey, AWS_REGION: 'us-east-1' },
  });
const keys = generateKeyPairSync('ed25519');
const command = (i: number) =>
  testCommand(i, { worker: 'w', payload: Buffer.from(JSON.stringify({ command: 'set-point', value: i, pad: 'x'.repeat(200) })).toString('base64') });

function tmp(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-archive-test-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function client(t: TestContext): S3Client {
  const c = s3Client(config);
  t.after(() => c.destroy());
  return c;
}

interface Seen {
  archived: string[];
  failures: string[];
  backlog: number[];
}

function events(): ArchiveEvents & { seen: Seen } {
  const seen: Seen = { archived: [], failures: [], backlog: [] };
  return {
    seen,
    archived: (segment) => seen.archived.push(segment),
    failed: (_segment, err) => seen.failures.push(err.message),
    backlog: (n) => seen.backlog.push(n),
  };
}

/** Writes commands from..to into a log of 4 KiB segments, signed every 5, every sealed segment handed to the archiver. */
async function write(dir: string, archiver: SegmentArchiver, from: number, to: number): Promise<void> {
  const log = await AuditLog.open(dir, {
    segmentBytes: 4096,
    signing: { privateKey: keys.privateKey, publicKey: keys.publicKey, every: 5, everyMs: 3_600_000 },
    onSegment: (segment) => archiver.sealedUpTo(segment),
  });
  archiver.start();
  for (let i = from; i <= to; i++) await log.append(command(i));
  await log.close();
}

async function archiverFor(dir: string, prefix: string, e: ArchiveEvents, s: S3Settings = settings, b = bucket): Promise<SegmentArchiver> {
  return new SegmentArchiver(await S3Store.open(s, b), e, {
    dir,
    keyPrefix: prefix,
    mode: 'COMPLIANCE',
    retentionDays: 1,
    retryMs: 200,
    maxFailingMs: 1_000,
  });
}

/** A signed log of 60 commands archived under `<prefix>w/`; returns its directory and what was sealed. */
async function archivedLog(t: TestContext, prefix: string) {
  const base = tmp(t);
  const dir = join(base, 'log');
  const pub = join(base, 'audit-signing.pub');
  writeFileSync(pub, keys.publicKey.export({ type: 'spki', format: 'pem' }));
  const e = events();
  const archiver = await archiverFor(dir, `${prefix}w/`, e);
  await write(dir, archiver, 1, 60);
  await archiver.close(30_000);
  const sealed = segmentFiles(dir).slice(0, -1);
  return { dir, pub, sealed, seen: e.seen, base };
}

/** The last seq in the sealed segments (everything but the newest segment, which is still open). */
function lastSealedSeq(dir: string, sealed: readonly string[]): { lastSeq: number; commands: number } {
  const copy = mkdtempSync(join(tmpdir(), 'sluice-archive-sealed-'));
  try {
    for (const s of sealed) writeFileSync(join(copy, s), readFileSync(join(dir, s)));
    const r = verifyAuditLog(copy);
    return { lastSeq: r.lastSeq, commands: r.commands };
  } finally {
    rmSync(copy, { recursive: true, force: true });
  }
}

test('sealed segments are uploaded under COMPLIANCE retention, and the log verifies and replays from the archive alone', async (t) => {
  const prefix = `${unique('archive')}/`;
  const { dir, pub, sealed, seen } = await archivedLog(t, prefix);
  assert.ok(sealed.length >= 5, `${sealed.length} sealed segments`);
  assert.deepEqual(seen.archived, sealed, 'every sealed segment, in order; the open one is not');
  assert.equal(seen.backlog.at(-1), 0);
  assert.deepEqual(seen.failures, []);

  const s3 = client(t);
  const listed = await s3.send(new ListObjectVersionsCommand({ Bucket: bucket, Prefix: prefix }));
  assert.deepEqual(listed.Versions?.map((v) => v.Key).sort(), sealed.map((s) => `${prefix}w/${s}`).sort());
  const retention = await s3.send(new GetObjectRetentionCommand({ Bucket: bucket, Key: `${prefix}w/${sealed[0]}` }));
  assert.equal(retention.Retention?.Mode, 'COMPLIANCE');
  const until = retention.Retention?.RetainUntilDate?.getTime() ?? 0;
  assert.ok(Math.abs(until - (Date.now() + 86_400_000)) < 120_000, `retained until ${new Date(until).toISOString()}`);

  const expected = lastSealedSeq(dir, sealed);
  const v = cli('audit', 'verify', `s3://${bucket}/${prefix}w`, '--public-key', pub);
  assert.equal(v.status, 0, v.stdout + v.stderr);
  assert.match(v.stdout, new RegExp(`archive: s3://${bucket}/${prefix}w/: ${sealed.length} segments read`));
  assert.match(v.stdout, new RegExp(`ok: ${expected.lastSeq} records .* in ${sealed.length} segments; last seq ${expected.lastSeq}.*signatures valid`));

  const r = cli('audit', 'replay', `s3://${bucket}/${prefix}w/`, '--public-key', pub);
  assert.equal(r.status, 0, r.stderr);
  const replayed = r.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { seq: number; payload: string });
  assert.equal(replayed.length, expected.commands);
  assert.deepEqual(
    replayed.map((c) => JSON.parse(Buffer.from(c.payload, 'base64').toString()).value),
    Array.from({ length: expected.commands }, (_, i) => i + 1),
    'every archived command, in order, its payload as recorded',
  );
});

test('a delete of a locked segment is refused by the server, for the root user too; a delete marker or a version written over it does not change what verify reads', async (t) => {
  const prefix = `${unique('archive-tamper')}/`;
  const { pub, sealed } = await archivedLog(t, prefix);
  const s3 = client(t);
  const key = `${prefix}w/${sealed[1]}`;
  const versionId = (await s3.send(new ListObjectVersionsCommand({ Bucket: bucket, Prefix: key }))).Versions?.[0]?.VersionId;
  assert.ok(versionId);

  // the root user's keys: COMPLIANCE binds it as any user, bypass header or not
  await assert.rejects(
    s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key, VersionId: versionId, BypassGovernanceRetention: true })),
    (err: { name?: string; $metadata?: { httpStatusCode?: number } }) => err.name === 'AccessDenied' && err.$metadata?.httpStatusCode === 403,
  );
  // the same delete of an unlocked version goes through: the refusal is the lock's
  const unlocked = `${prefix}unlocked`;
  const put = await s3.send(new PutObjectCommand({ Bucket: bucket, Key: unlocked, Body: Buffer.from('x'), ChecksumAlgorithm: 'SHA256' }));
  await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: unlocked, VersionId: put.VersionId }));
  assert.equal((await s3.send(new ListObjectVersionsCommand({ Bucket: bucket, Prefix: unlocked }))).Versions, undefined);

  // a plain delete only hides it behind a marker; a later write only adds a version
  await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: `${prefix}w/${sealed[0]}` }));
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: Buffer.from('rewritten'), ChecksumAlgorithm: 'SHA256' }));

  const v = cli('audit', 'verify', `s3://${bucket}/${prefix}w/`, '--public-key', pub);
  assert.equal(v.status, 0, v.stdout + v.stderr);
  assert.match(v.stdout, /WARNING .*00000000000000000001\.audit: hidden by a delete marker; the version written first is read/);
  assert.match(v.stdout, new RegExp(`WARNING .*${sealed[1]}: 2 versions \\(written over later\\); the one written first is read`));
  assert.match(v.stdout, /signatures valid/);
});

test('several workers under one prefix are one log each, read as one in receive order; a prefix with nothing there is no log (exit 7)', async (t) => {
  const prefix = `${unique('archive-workers')}/`;
  const a = await archivedLog(t, prefix);
  // a second worker: its own log under <prefix>w2/
  const dir2 = join(a.base, 'log2');
  const archiver = await archiverFor(dir2, `${prefix}w2/`, events());
  await write(dir2, archiver, 1, 30);
  await archiver.close(30_000);

  const v = cli('audit', 'verify', `s3://${bucket}/${prefix}`, '--public-key', a.pub);
  assert.equal(v.status, 0, v.stdout + v.stderr);
  assert.match(v.stdout, new RegExp(`s3://${bucket}/${prefix}w/: ok`));
  assert.match(v.stdout, new RegExp(`s3://${bucket}/${prefix}w2/: ok`));
  assert.match(v.stdout, /ok: 2 logs, \d+ commands read as one in receive order/);

  const none = cli('audit', 'verify', `s3://${bucket}/${unique('nothing')}/`);
  assert.equal(none.status, 7, none.stdout + none.stderr);
  assert.match(none.stdout, /FAIL no-log: s3:\/\/.* holds no audit log segments/);
});

test('a store that fails holds no command: the backlog waits, readiness names it, and the next start uploads it; what is there is not sent again', async (t) => {
  const prefix = `${unique('archive-down')}/`;
  const base = tmp(t);
  const dir = join(base, 'log');
  // nothing listens there: every attempt fails
  const e1 = events();
  const down = await archiverFor(dir, `${prefix}w/`, e1, { ...settings, endpoint: 'http://127.0.0.1:9', timeoutMs: 2_000 });
  const started = Date.now();
  await write(dir, down, 1, 60);
  assert.ok(Date.now() - started < 20_000, 'the log never waited on the archive');
  await new Promise((r) => setTimeout(r, 1_500));
  assert.ok(down.backlog >= 5, `backlog ${down.backlog}`);
  assert.match(down.problems().join('\n'), /audit archive: uploads have failed for \d+ s .*sealed segment\(s\) wait, the oldest 00000000000000000001\.audit/);
  assert.ok(e1.seen.failures.length > 0);
  await down.close(0);

  // the next start, with the store back: everything sealed goes up
  const e2 = events();
  const up = await archiverFor(dir, `${prefix}w/`, e2);
  up.start();
  await up.close(30_000);
  const sealed = segmentFiles(dir).slice(0, -1);
  assert.deepEqual(e2.seen.archived, sealed);

  // and again: the listing finds them, nothing is uploaded twice
  const e3 = events();
  const again = await archiverFor(dir, `${prefix}w/`, e3);
  again.start();
  await again.close(30_000);
  assert.deepEqual(e3.seen.archived, []);
  assert.equal(again.newestArchived, sealed.at(-1));
});

test('an upload finds the same bytes there (a crash after the upload) and goes on; other bytes under its key are refused, never overwritten', async (t) => {
  const prefix = `${unique('archive-put')}/`;
  const base = tmp(t);
  const file = join(base, 'segment');
  writeFileSync(file, 'the sealed bytes');
  const store = await S3Store.open(settings, bucket);
  t.after(() => store.close());
  const object = async (path: string) => ({
    key: `${prefix}x.audit`,
    file: path,
    size: statSync(path).size,
    sha256: await sha256OfFile(path),
    mode: 'COMPLIANCE' as const,
    retainUntil: new Date(Date.now() + 3_600_000),
  });
  assert.equal(await store.putLocked(await object(file)), 'stored');
  assert.equal(await store.putLocked(await object(file)), 'present');
  const other = join(base, 'other');
  writeFileSync(other, 'other bytes');
  await assert.rejects(store.putLocked(await object(other)), /already holds other bytes .*never overwritten/);
});

test('a bucket without Object Lock is refused before any upload, with the reason', async (t) => {
  const plain = unique('no-lock').toLowerCase();
  await client(t).send(new CreateBucketCommand({ Bucket: plain }));
  const base = tmp(t);
  const dir = join(base, 'log');
  const e = events();
  const archiver = await archiverFor(dir, 'w/', e, settings, plain);
  await write(dir, archiver, 1, 30);
  await new Promise((r) => setTimeout(r, 500));
  await archiver.close(0);
  assert.deepEqual(e.seen.archived, []);
  assert.match(e.seen.failures[0] ?? '', /the bucket has no Object Lock/);
});
