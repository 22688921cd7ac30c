// The file sink on a real disk: the conformance suite (conformance.ts); /dev/full for a write
// that fails for good (ENOSPC), no fault injection.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { FileDeadLetterSink } from '../../src/sinks/dead-letter/dead-letter-file.ts';
import { FileSink } from '../../src/sinks/file/file-sink.ts';
import type { DeadLetterItem } from '../../src/sinks/sink.ts';
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
