// The file sink on a real disk: the conformance suite (conformance.ts); /dev/full for a write
// that fails for good (ENOSPC on a device that cannot be cut back), and a real full tmpfs, where
// the batch waits for room. No fault injection.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { FileDeadLetterSink } from '../../src/sinks/dead-letter/dead-letter-file.ts';
import { FileSink } from '../../src/sinks/file/file-sink.ts';
import { type DeadLetterItem, SinkError } from '../../src/sinks/sink.ts';
import { resizeTmpfs, smallTmpfs } from '../support/tmpfs.ts';
import { conformance } from './conformance.ts';

let dir = '';
let path = '';

conformance<string>({
  name: 'file',
  async create(t) {
    dir = mkdtempSync(join(tmpdir(), 'sluice-file-sink-'));
    path = join(dir, 'sub', 'out.jsonl');
    const sink = new FileSink(path);
    t.after(() => sink.close());
    return sink;
  },
  good: (n, from = 0) => Array.from({ length: n }, (_, i) => JSON.stringify({ n: from + i, topic: `t/${from + i}` })),
  async readBack(items) {
    const lines = new Set(readFileSync(path, 'utf8').split('\n'));
    return items.filter((l) => lines.has(l)).length;
  },
  bad: { none: 'every item is already a JSON line: the file sink refuses nothing' },
  unreachable: {
    // its directory cannot be made: a file stands where it should be
    async sink() {
      const d = mkdtempSync(join(tmpdir(), 'sluice-file-sink-'));
      writeFileSync(join(d, 'blocked'), '');
      return new FileSink(join(d, 'blocked', 'out.jsonl'));
    },
  },
  fatal: { sink: async () => new FileSink('/dev/full') },
  outage: {
    async begin() {
      // the sink has not opened its file yet: its directory is blocked until end()
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'sub'), '');
    },
    async end() {
      rmSync(join(dir, 'sub'));
    },
  },
});

// the dead letter as a file (deadLetter.to: file): the same writer, each dead letter one line
let deadPath = '';
const letter = (n: number): DeadLetterItem => ({
  message: { topic: `acme/s/z/t/d-${n}/telemetry`, payload: Buffer.from(`bad-${n}`), qos: 1, retain: false, properties: {}, receivedAt: Date.now() },
  refusals: [{ reason: 'invalid-json', stage: 'decode', route: 'telemetry', error: 'Unexpected token' }],
});

conformance<DeadLetterItem>({
  name: 'dead-letter (file)',
  async create(t) {
    deadPath = join(mkdtempSync(join(tmpdir(), 'sluice-dead-letter-')), 'dead', 'letters.jsonl');
    const sink = new FileDeadLetterSink(deadPath);
    t.after(() => sink.close());
    return sink;
  },
  good: (n, from = 0) => Array.from({ length: n }, (_, i) => letter(from + i)),
  async readBack(items) {
    const topics = new Set(
      readFileSync(deadPath, 'utf8')
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => (JSON.parse(l) as { topic: string }).topic),
    );
    return items.filter((x) => topics.has(x.message.topic)).length;
  },
  bad: { none: 'a dead letter is always one JSON line: nothing is refused' },
  unreachable: {
    async sink() {
      const d = mkdtempSync(join(tmpdir(), 'sluice-dead-letter-'));
      writeFileSync(join(d, 'blocked'), '');
      return new FileDeadLetterSink(join(d, 'blocked', 'letters.jsonl'));
    },
  },
  fatal: { sink: async () => new FileDeadLetterSink('/dev/full') },
  outage: {
    async begin() {
      mkdirSync(dirname(dirname(deadPath)), { recursive: true });
      writeFileSync(dirname(deadPath), '');
    },
    async end() {
      rmSync(dirname(deadPath));
    },
  },
});

test('a full disk (a real 256 KiB tmpfs) holds the batch: a retriable failure, the file cut back to whole lines; once there is room every line is written once', async (t) => {
  const d = smallTmpfs(t, '256k', 'sluice-file-full-');
  if (d === undefined) return;
  const file = join(d, 'out.jsonl');
  const sink = new FileSink(file);
  t.after(() => sink.close());
  const batch = (from: number) => Array.from({ length: 100 }, (_, i) => JSON.stringify({ n: from + i, pad: 'x'.repeat(400) }));
  let n = 0;
  let failure: unknown;
  for (; n < 10_000; n += 100) {
    try {
      await sink.write(batch(n));
    } catch (err) {
      failure = err;
      break;
    }
  }
  assert.ok(failure instanceof SinkError, `a SinkError, got ${String(failure)}`);
  assert.equal(failure.retriable, true, `retriable: ${failure.message}`);
  assert.match(failure.message, /disk full \(ENOSPC\)/);
  const lines = readFileSync(file, 'utf8').split('\n');
  assert.equal(lines.pop(), '', 'the file ends with a whole line');
  assert.equal(lines.length, n, 'exactly the batches that were durable, nothing of the failed one');
  assert.deepEqual(sink.problems(), [], 'not failed for good');

  // room again: the same batch (as the queue retries it), then more
  resizeTmpfs(d, '4m');
  await sink.write(batch(n));
  await sink.write(batch(n + 100));
  const after = readFileSync(file, 'utf8')
    .trimEnd()
    .split('\n')
    .map((l) => (JSON.parse(l) as { n: number }).n);
  assert.deepEqual(
    after,
    Array.from({ length: n + 200 }, (_, i) => i),
    'every line once, in order',
  );
  assert.ok(statSync(file).size > 256 * 1024);
});
