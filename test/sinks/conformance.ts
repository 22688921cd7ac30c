// One conformance suite that every sink passes against its real server (docs/sinks.md: the
// contract). A harness says how to make the sink, good and bad items, how to read back what
// the server holds, and how to provoke an outage and a fatal failure where the sink has them.
//  - a write resolves only when the batch is durable, except what it rejects or defers (written
//    again, as the queue does): what it resolved is read back at once;
//  - a bad item is rejected alone, with its reason, and the rest of its batch is written;
//  - an unreachable server is retriable, never fatal; a fatal failure is never retried;
//  - the queue in front flushes on demand and the sink closes;
//  - health goes down during an outage and comes back by itself.
import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pino from 'pino';
import { Registry } from 'prom-client';
import { createMetrics } from '../../src/observability/metrics.ts';
import type { Outcome } from '../../src/outcome.ts';
import { BatchQueue } from '../../src/pipeline/batch-queue.ts';
import { type ItemRejection, type Sink, SinkError } from '../../src/sinks/sink.ts';
import { waitFor } from '../support/e2e-helpers.ts';
import { printLogsOnFailure } from '../support/stack.ts';

export interface Harness<Item> {
  readonly name: string;
  /** A sink against its real server, closed after the test. */
  create(t: TestContext): Promise<Sink<Item>>;
  /** `n` good items, distinct; `from` numbers them. */
  good(n: number, from?: number): Item[];
  /** How many of `items` the server holds now (read back, not inferred). */
  readBack(items: readonly Item[]): Promise<number>;
  /** An item the server refuses for what it is, and the reason the sink gives; absent: the sink refuses nothing (say why). */
  readonly bad?: { item(): Item; reason: string } | { none: string };
  /** A sink whose server cannot be reached; absent: say why there is none. */
  readonly unreachable: { sink(t: TestContext): Promise<Sink<Item>> } | { none: string };
  /** A sink whose next write fails for good (a failed fsync); absent: say why none can. */
  readonly fatal?: { sink(t: TestContext): Promise<Sink<Item>> } | { none: string };
  /** Makes the server unreachable until `end()` (health must go down, then up by itself). */
  readonly outage?: { begin(t: TestContext): Promise<void>; end(): Promise<void> } | { none: string };
}

const log = pino({ level: process.env.CONFORMANCE_LOG ?? 'silent' });

function queueFor<T>(sink: Sink<T>, lingerMs = 0) {
  const metrics = createMetrics(new Registry(), { defaultMetrics: false });
  return new BatchQueue<T>(sink, { maxItems: 500, maxBytes: 64 * 1024 * 1024, lingerMs }, { minMs: 100, maxMs: 500 }, log, metrics);
}

function outcomes(n: number) {
  const seen: Outcome[] = [];
  const listener = { decided: (o: Outcome) => void seen.push(o) };
  return { seen, listener, all: () => seen.length === n };
}

/**
 * Writes `items` as the queue does: what the sink defers (its destination is not ready on its
 * own: a topic created a moment ago that the client's metadata does not show yet) is written
 * again, alone, until nothing is deferred. Returns the rejections, indexed into `items`; every
 * other item is then durable. A sink that keeps deferring fails the test.
 */
async function writeDurably<Item>(t: TestContext, sink: Sink<Item>, items: readonly Item[]): Promise<ItemRejection[]> {
  const rejected: ItemRejection[] = [];
  let pending = items.map((_, i) => i);
  for (let attempt = 1; ; attempt++) {
    const result = await sink.write(pending.map((i) => items[i] as Item));
    for (const r of result.rejected) rejected.push({ ...r, index: pending[r.index] as number });
    const deferred = result.deferred ?? [];
    if (deferred.length === 0) return rejected.sort((x, y) => x.index - y.index);
    assert.ok(attempt < 40, `${deferred.length} items still deferred after ${attempt} writes`);
    t.diagnostic(`write ${attempt}: ${deferred.length} of ${pending.length} deferred (destination not ready); written again`);
    pending = deferred.map((i) => pending[i] as number);
    await sleep(250);
  }
}

export function conformance<Item>(h: Harness<Item>): void {
  const name = (what: string) => `${h.name} conformance: ${what}`;

  test(name('a write resolves only once the batch is durable: all of it is read back at once'), { timeout: 60_000 }, async (t) => {
    printLogsOnFailure(t);
    const sink = await h.create(t);
    const items = h.good(25);
    assert.deepEqual(await writeDurably(t, sink, items), []);
    assert.equal(await h.readBack(items), items.length);
  });

  test(name('a bad item is rejected alone, with its reason; the rest of its batch is durable'), { timeout: 120_000 }, async (t) => {
    if (!h.bad || 'none' in h.bad) {
      t.skip(h.bad && 'none' in h.bad ? h.bad.none : 'no bad item given');
      return;
    }
    printLogsOnFailure(t);
    const sink = await h.create(t);
    const [a, b, c, d] = h.good(4, 100);
    const batch = [a, b, h.bad.item(), c, d] as Item[];
    const rejected = await writeDurably(t, sink, batch);
    assert.deepEqual(
      rejected.map((r) => [r.index, r.reason]),
      [[2, h.bad.reason]],
    );
    assert.ok(rejected[0]?.error, 'with an error text');
    assert.equal(await h.readBack([a, b, c, d] as Item[]), 4);
    // and the sink keeps working after it
    const after = h.good(5, 200);
    assert.deepEqual(await writeDurably(t, sink, after), []);
    assert.equal(await h.readBack(after), 5);
  });

  test(name('an unreachable server is retriable, never fatal'), { timeout: 60_000 }, async (t) => {
    if ('none' in h.unreachable) {
      t.skip(h.unreachable.none);
      return;
    }
    const sink = await h.unreachable.sink(t);
    await assert.rejects(sink.write(h.good(1)), (err: unknown) => {
      assert.ok(err instanceof SinkError, `a SinkError, got ${String(err)}`);
      assert.equal(err.retriable, true, `${err.message} must be retriable`);
      return true;
    });
  });

  test(name('a fatal failure is reported as fatal and never retried'), { timeout: 60_000 }, async (t) => {
    if (!h.fatal || 'none' in h.fatal) {
      t.skip(h.fatal && 'none' in h.fatal ? h.fatal.none : 'no fatal case given');
      return;
    }
    const sink = await h.fatal.sink(t);
    const queue = queueFor(sink);
    const o = outcomes(3);
    for (const item of h.good(3)) queue.push(item, o.listener);
    await waitFor('outcomes', o.all, 20_000);
    assert.deepEqual(
      o.seen.map((x) => x.kind),
      ['fatal', 'fatal', 'fatal'],
    );
    assert.equal(queue.healthy, false);
    const late = outcomes(1);
    queue.push(h.good(1, 50)[0] as Item, late.listener);
    assert.deepEqual(
      late.seen.map((x) => x.kind),
      ['fatal'],
      'a fatal queue takes nothing more',
    );
    queue.close();
  });

  test(name('the queue in front flushes on demand, long before its linger, and the sink closes'), { timeout: 60_000 }, async (t) => {
    printLogsOnFailure(t);
    const sink = await h.create(t);
    const queue = queueFor(sink, 60_000);
    const items = h.good(10, 300);
    const o = outcomes(items.length);
    for (const item of items) queue.push(item, o.listener);
    await queue.flushed();
    assert.ok(o.all(), 'every item has its outcome after flushed()');
    assert.ok(o.seen.every((x) => x.kind === 'delivered'));
    assert.equal(await h.readBack(items), items.length);
    queue.close();
    await sink.close();
  });

  test(name('health goes down during an outage and comes back by itself; nothing is lost'), { timeout: 120_000 }, async (t) => {
    if (!h.outage || 'none' in h.outage) {
      t.skip(h.outage && 'none' in h.outage ? h.outage.none : 'no outage given');
      return;
    }
    printLogsOnFailure(t);
    const outage = h.outage;
    const sink = await h.create(t);
    const queue = queueFor(sink);
    await outage.begin(t);
    const items = h.good(5, 400);
    const o = outcomes(items.length);
    try {
      for (const item of items) queue.push(item, o.listener);
      const frozeAt = Date.now();
      await waitFor('the queue to report the sink unhealthy', () => !queue.healthy, 60_000);
      t.diagnostic(`unhealthy ${Date.now() - frozeAt} ms after the server froze`);
      assert.equal(o.seen.length, 0, 'nothing is settled while the server is away');
    } finally {
      await outage.end();
    }
    const thawedAt = Date.now();
    await waitFor('the items to be durable', o.all, 60_000);
    t.diagnostic(`durable ${Date.now() - thawedAt} ms after the server came back`);
    assert.ok(o.seen.every((x) => x.kind === 'delivered'));
    assert.equal(queue.healthy, true, 'healthy again');
    assert.equal(await h.readBack(items), items.length);
    queue.close();
  });
}

/** SIGSTOP a stack server for an outage (SIGCONT ends it, whatever happens). */
export function freeze(pidOf: () => number | undefined): { begin(t: TestContext): Promise<void>; end(): Promise<void> } {
  let frozen = false;
  let pid: number | undefined;
  return {
    async begin(t) {
      pid = pidOf();
      if (pid === undefined) throw new Error('server not running');
      process.kill(pid, 'SIGSTOP');
      frozen = true;
      const frozenPid = pid;
      t.after(() => {
        if (frozen) process.kill(frozenPid, 'SIGCONT');
      });
    },
    async end() {
      if (frozen && pid !== undefined) process.kill(pid, 'SIGCONT');
      frozen = false;
      await sleep(100);
    },
  };
}
