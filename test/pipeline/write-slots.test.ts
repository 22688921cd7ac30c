import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { WriteSlots } from '../../src/pipeline/write-slots.ts';

/** A write that ends when told to. */
function gate(): { write: () => Promise<void>; started: boolean; open(): void; fail(err: Error): void } {
  let settle: { resolve(): void; reject(err: Error): void } | undefined;
  const g = {
    started: false,
    write: () =>
      new Promise<void>((resolve, reject) => {
        g.started = true;
        settle = { resolve, reject };
      }),
    open: () => settle?.resolve(),
    fail: (err: Error) => settle?.reject(err),
  };
  return g;
}

const tick = () => new Promise((r) => setImmediate(r));

test('at most `concurrency` writes run; the others start in the order they were added', async () => {
  const slots = new WriteSlots(2);
  const gates = [gate(), gate(), gate(), gate()];
  const done: number[] = [];
  gates.forEach((g, i) => void slots.add(g.write).then(() => done.push(i)));
  assert.deepEqual(
    gates.map((g) => g.started),
    [true, true, false, false],
  );
  assert.equal(slots.count, 4);
  gates[1]?.open();
  await tick();
  assert.deepEqual(
    gates.map((g) => g.started),
    [true, true, true, false],
  );
  gates[0]?.open();
  gates[2]?.open();
  await tick();
  gates[3]?.open();
  await tick();
  assert.deepEqual(done, [1, 0, 2, 3]);
  assert.equal(slots.count, 0);
});

test('a write settles after its place is given back, so what the caller adds on settling starts at once', async () => {
  const slots = new WriteSlots(1);
  const first = gate();
  const next = gate();
  let countWhenSettled = -1;
  const settled = slots.add(first.write).then(() => {
    countWhenSettled = slots.count;
    void slots.add(next.write);
  });
  first.open();
  await settled;
  assert.equal(countWhenSettled, 0);
  assert.equal(next.started, true);
});

test('a failed write rejects its promise and frees its place', async () => {
  const slots = new WriteSlots(1);
  const failing = gate();
  const after = gate();
  const rejected = assert.rejects(slots.add(failing.write), /broken/);
  void slots.add(after.write);
  failing.fail(new Error('broken'));
  await rejected;
  assert.equal(after.started, true);
});

test('a write that throws before it returns a promise rejects and frees its place too', async () => {
  const slots = new WriteSlots(1);
  const after = gate();
  const rejected = assert.rejects(
    slots.add(() => {
      throw new Error('thrown');
    }),
    /thrown/,
  );
  void slots.add(after.write);
  await rejected;
  assert.equal(after.started, true);
  after.open();
  await slots.onIdle();
  assert.equal(slots.count, 0);
});

test('onIdle waits for running and waiting writes; clear drops the waiting ones', async () => {
  const slots = new WriteSlots(1);
  await slots.onIdle();
  const running = gate();
  const waiting = gate();
  void slots.add(running.write);
  void slots.add(waiting.write);
  let idle = false;
  const idled = slots.onIdle().then(() => {
    idle = true;
  });
  slots.clear();
  assert.equal(slots.count, 1);
  await tick();
  assert.equal(idle, false, 'a write still runs');
  running.open();
  await idled;
  assert.equal(waiting.started, false, 'a cleared write never runs');
});

test('one write at a time leaves no garbage in the old generation (p-queue, measured the same way, does)', () => {
  // measured in a process of its own: the test runner's own promise tracking allocates there too
  const writes = 20_000;
  const script = `
    import { getHeapSpaceStatistics } from 'node:v8';
    import PQueue from ${JSON.stringify(import.meta.resolve('p-queue'))};
    import { WriteSlots } from ${JSON.stringify(import.meta.resolve('../../src/pipeline/write-slots.ts'))};
    const oldSpaceUsed = () => getHeapSpaceStatistics().find((s) => s.space_name === 'old_space').space_used_size;
    const write = () => Promise.resolve();
    // old-generation bytes allocated while writes go one after another through a queue that lives there
    async function growth(add) {
      for (let i = 0; i < 100; i++) await add(write);
      gc();
      gc();
      const before = oldSpaceUsed();
      for (let i = 0; i < ${writes}; i++) await add(write);
      return oldSpaceUsed() - before;
    }
    const slots = new WriteSlots(1);
    const queue = new PQueue({ concurrency: 1 });
    const none = await growth((w) => w());
    const ours = await growth((w) => slots.add(w));
    const pQueue = await growth((w) => queue.add(w));
    process.stdout.write(JSON.stringify({ none, ours, pQueue }));`;
  const out = execFileSync(process.execPath, ['--expose-gc', '--no-allocation-site-pretenuring', '--input-type=module', '-e', script], { encoding: 'utf8' });
  const { none, ours, pQueue } = JSON.parse(out) as { none: number; ours: number; pQueue: number };
  // p-queue's Map of running tasks gets a new table in the old generation each time it empties
  assert.ok(pQueue > 50 * writes, `p-queue: ${pQueue} bytes in the old generation for ${writes} writes (the measurement sees such garbage)`);
  assert.ok(ours - none < 2 * writes, `WriteSlots: ${ours} bytes in the old generation for ${writes} writes (${none} with no queue at all)`);
});
