import assert from 'node:assert/strict';
import { test } from 'node:test';
import { queryObjects } from 'node:v8';
import { AckWindow } from '../../src/source/ack-window.ts';

function windowOf(capacity: number) {
  const released: unknown[] = [];
  let dropped = 0;
  const w = new AckWindow(capacity, { release: (a) => released.push(a), dropped: () => dropped++ });
  return { w, released, dropped: () => dropped };
}

test('acks leave in arrival order, whatever order the sinks finish in', () => {
  const { w, released } = windowOf(10);
  const slots = [1, 2, 3, 4].map((n) => {
    const s = w.open();
    w.attach(s, n);
    return s;
  });
  slots[3]?.settle();
  slots[1]?.settle();
  assert.deepEqual(released, [], 'nothing before the first one is durable');
  slots[0]?.settle();
  assert.deepEqual(released, [1, 2]);
  slots[2]?.settle();
  assert.deepEqual(released, [1, 2, 3, 4]);
  assert.equal(w.inFlight, 0);
});

test('opened counts every slot taken, across releases, compactions and lost connections', () => {
  const { w } = windowOf(10);
  for (let i = 0; i < 3_000; i++) w.open().settle(); // past the compaction threshold
  w.open();
  w.connectionLost();
  w.open();
  assert.equal(w.opened, 3_002);
  assert.equal(w.inFlight, 2);
});

test('settle is idempotent and QoS 0 slots release nothing', () => {
  const { w, released } = windowOf(2);
  const a = w.open();
  a.settle();
  a.settle();
  assert.deepEqual(released, []);
  assert.equal(w.inFlight, 0);
});

test('the window holds the pump at capacity and lets it go when the oldest is released', () => {
  const { w } = windowOf(2);
  const a = w.open();
  w.open();
  assert.equal(w.full, true);
  let resumed = 0;
  w.whenRoom(() => resumed++);
  assert.equal(resumed, 0);
  assert.equal(w.stalledWithin(0), true);
  a.settle();
  assert.equal(resumed, 1);
  assert.equal(w.highWater, 2);
  assert.equal(w.stalledWithin(0, Date.now() + 1), false);
  assert.equal(w.stalledWithin(10_000), true, 'recently held counts as held');
});

test('acks of a dropped connection are never sent, but still count until settled', () => {
  const { w, released, dropped } = windowOf(3);
  const old = w.open();
  w.attach(old, 'old');
  const gen = w.connection;
  w.connectionLost();
  assert.notEqual(w.connection, gen);
  const fresh = w.open();
  w.attach(fresh, 'new');
  assert.equal(w.inFlight, 2, 'the stale slot still takes room');
  fresh.settle();
  assert.deepEqual(released, [], 'in order: behind the stale slot');
  old.settle();
  assert.deepEqual(released, ['new']);
  assert.equal(dropped(), 1);
});

test('a closed window gives no more room; drained() waits for the last slot', async () => {
  const { w } = windowOf(1);
  const a = w.open();
  w.close();
  let resumed = false;
  w.whenRoom(() => (resumed = true));
  setTimeout(() => a.settle(), 30);
  await w.drained();
  assert.equal(w.inFlight, 0);
  assert.equal(resumed, false, 'no new message is taken while shutting down');
});

test('payload bytes hold the pump too: past byteCapacity (the crossing message taken), room again once released', () => {
  const w = new AckWindow(100, { release: () => {} }, 1000);
  const a = w.open(Date.now(), 600);
  w.attach(a, 'a');
  assert.equal(w.full, false);
  const b = w.open(Date.now(), 600);
  w.attach(b, 'b');
  assert.equal(w.inFlightBytes, 1200);
  assert.equal(w.full, true, 'full by bytes with 2 of 100 messages');
  let resumed = false;
  w.whenRoom(() => (resumed = true));
  b.settle();
  assert.equal(resumed, false, 'b waits behind a: its bytes still count');
  a.settle();
  assert.equal(resumed, true);
  assert.equal(w.inFlightBytes, 0);
  assert.throws(() => new AckWindow(10, { release: () => {} }, 0), /byte capacity/);
});

test('a released slot and its ack are let go of at once, not kept until the queue is compacted', () => {
  // Kept, a released slot outlived two young-generation GCs at 1,000 msg/s and was promoted with
  // its ack: ~80 KB of the old generation per scavenge, which only a full GC takes back.
  const w = new AckWindow(2000, { release: () => {} });
  const Slot = openAndSettle(w, 1000);
  assert.equal(w.inFlight, 0);
  const open = w.open(); // one unsettled slot, which the window holds
  // queryObjects runs a full GC, then counts what is still reachable
  const live = queryObjects(Slot, { format: 'count' }) as number;
  assert.equal(live, 1, `slots still reachable after 1,000 were released: ${live}`);
  open.settle();
});

type Constructor = new (...args: never[]) => unknown;

/** Opens and settles `n` slots in a frame of its own (none stays on the test's); the slot class. */
function openAndSettle(w: AckWindow, n: number): Constructor {
  let Slot: Constructor | undefined;
  for (let i = 0; i < n; i++) {
    const s = w.open();
    Slot ??= Object.getPrototypeOf(s).constructor;
    w.attach(s, { cmd: 'puback', messageId: i });
    s.settle();
  }
  return Slot as Constructor;
}
