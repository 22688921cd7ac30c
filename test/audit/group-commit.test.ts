// Group commit: concurrent submissions share one commit; a failure rejects every waiter and all
// later ones, never retried; and a short write is finished, never taken for a whole one.
import assert from 'node:assert/strict';
import type { FileHandle } from 'node:fs/promises';
import { test } from 'node:test';
import { AuditFatalError, GroupCommit } from '../../src/audit/log/group-commit.ts';
import { writeFully } from '../../src/write-fully.ts';

test('submissions made while a commit runs share the next one, in order', async () => {
  const batches: number[][] = [];
  const commits = new GroupCommit<number, string>(async (batch) => {
    batches.push([...batch]);
    await new Promise((r) => setTimeout(r, 10));
    return batch.map((n) => `done ${n}`);
  });
  const results = await Promise.all([1, 2, 3].map((n) => commits.submit(n)));
  assert.deepEqual(results, ['done 1', 'done 2', 'done 3']);
  const first = commits.submit(4);
  await new Promise((r) => setImmediate(r)); // the commit of 4 is running
  const later = [5, 6].map((n) => commits.submit(n));
  await Promise.all([first, ...later]);
  assert.deepEqual(batches, [[1, 2, 3], [4], [5, 6]]);
});

test('a failed commit is fatal: its waiters and every later submission are rejected; no retry', async () => {
  let calls = 0;
  let told: Error | undefined;
  const commits = new GroupCommit<number, void>(
    async () => {
      calls++;
      throw new Error('EIO: fsync failed');
    },
    (err) => (told = err),
  );
  await assert.rejects(commits.submit(1), (err: Error) => err instanceof AuditFatalError && /never retried/.test(err.message));
  await assert.rejects(commits.submit(2), AuditFatalError);
  assert.equal(calls, 1, 'never retried');
  assert.ok(told instanceof AuditFatalError);
});

test('writeFully finishes a short write (a nearly full disk writes part and succeeds) and fails a stuck one', async () => {
  const written: number[] = [];
  const short = {
    async write(data: Uint8Array, offset: number, length: number) {
      const n = Math.min(3, length); // at most 3 bytes a call, like a disk with little room
      written.push(...data.subarray(offset, offset + n));
      return { bytesWritten: n, buffer: data };
    },
  } as unknown as FileHandle;
  const data = Uint8Array.from({ length: 20 }, (_, i) => i);
  await writeFully(short, data);
  assert.deepEqual(written, [...data]);
  const stuck = { write: async (data: Uint8Array) => ({ bytesWritten: 0, buffer: data }) } as unknown as FileHandle;
  await assert.rejects(writeFully(stuck, data), /made no progress at byte 0 of 20/);
});
