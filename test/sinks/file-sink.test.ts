// The file sink on a real disk: the conformance suite (conformance.ts); /dev/full for a write
// that fails for good (ENOSPC), no fault injection.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileSink } from '../../src/sinks/file/file-sink.ts';
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
