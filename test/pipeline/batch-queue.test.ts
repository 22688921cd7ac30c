// The deferred lane's stuck clock (src/pipeline/batch-queue.ts), on a scripted sink: a
// destination failing on its own is given up after stuckAfterMs while the sink answers, and an
// outage of the whole sink in between is held, never counted towards it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pino from 'pino';
import { Registry } from 'prom-client';
import { monotonicMs } from '../../src/clock.ts';
import { createMetrics } from '../../src/observability/metrics.ts';
import type { Outcome } from '../../src/outcome.ts';
import { BatchQueue } from '../../src/pipeline/batch-queue.ts';
import { type Sink, SinkError, type WriteResult } from '../../src/sinks/sink.ts';

/** Items named 'x' are deferred while `xFails`; every write throws (retriable) while `down`. */
class ScriptedSink implements Sink<string> {
  readonly name = 'scripted';
  xFails = true;
  down = false;
  readonly written: string[] = [];
  async write(batch: readonly string[]): Promise<WriteResult> {
    if (this.down) throw new SinkError(this.name, 'cluster unreachable');
    const deferred: number[] = [];
    batch.forEach((item, i) => {
      if (item === 'x' && this.xFails) deferred.push(i);
      else this.written.push(item);
    });
    return { rejected: [], deferred };
  }
  sizeOf(): number {
    return 1;
  }
  async close(): Promise<void> {}
}

const stuckAfterMs = 400;

function queueFor(sink: ScriptedSink): BatchQueue<string> {
  const metrics = createMetrics(new Registry(), { defaultMetrics: false });
  return new BatchQueue(sink, { maxItems: 10, maxBytes: 1e6, lingerMs: 0, stuckAfterMs }, { minMs: 10, maxMs: 30 }, pino({ level: 'silent' }), metrics);
}

/** Pushes `item`; returns what has been decided for it so far. */
function outcomeOf(queue: BatchQueue<string>, item: string): () => Outcome | undefined {
  let outcome: Outcome | undefined;
  queue.push(item, { decided: (o) => (outcome = o) });
  return () => outcome;
}

function refusal(outcome: Outcome | undefined): { reason: string; error: string } | undefined {
  return outcome?.kind === 'rejected' ? outcome.refusal : undefined;
}

test('a destination failing on its own while the sink answers is given up after stuckAfterMs (destination-unavailable)', async () => {
  const sink = new ScriptedSink();
  const queue = queueFor(sink);
  const x = outcomeOf(queue, 'x');
  const other = outcomeOf(queue, 'y');
  await sleep(stuckAfterMs + 300);
  assert.equal(other()?.kind, 'delivered');
  assert.equal(refusal(x())?.reason, 'destination-unavailable');
  queue.close();
});

test('an outage of the whole sink longer than stuckAfterMs is held: the deferred item is written once the sink is back, not dead-lettered', async () => {
  const sink = new ScriptedSink();
  const queue = queueFor(sink);
  const x = outcomeOf(queue, 'x');
  await sleep(50); // deferred while the sink answers
  sink.down = true; // then the whole cluster goes away, for twice stuckAfterMs
  await sleep(2 * stuckAfterMs);
  assert.equal(x(), undefined, 'nothing is decided during the outage');
  sink.down = false; // back: the destination still fails on its own for a moment
  await sleep(stuckAfterMs / 4);
  assert.equal(x(), undefined, 'the outage did not count towards stuckAfterMs');
  sink.xFails = false;
  await sleep(150);
  assert.equal(x()?.kind, 'delivered');
  assert.deepEqual(sink.written, ['x']);
  queue.close();
});

test('after an outage, a destination still failing on its own is given up once it has been stuck stuckAfterMs while the sink answered', async () => {
  const sink = new ScriptedSink();
  const queue = queueFor(sink);
  const x = outcomeOf(queue, 'x');
  await sleep(50);
  sink.down = true;
  await sleep(2 * stuckAfterMs);
  sink.down = false;
  await sleep(stuckAfterMs + 300);
  assert.equal(refusal(x())?.reason, 'destination-unavailable');
  assert.match(refusal(x())?.error ?? '', /while the sink answered/);
  queue.close();
});

test('a batch of 200,000 deferred items goes to the lane and back without overflowing the stack', async (t) => {
  const sink = new ScriptedSink();
  const metrics = createMetrics(new Registry(), { defaultMetrics: false });
  const n = 200_000;
  const queue = new BatchQueue(sink, { maxItems: n, maxBytes: 1e9, lingerMs: 10 }, { minMs: 10, maxMs: 30 }, pino({ level: 'silent' }), metrics);
  t.after(() => queue.close());
  let delivered = 0;
  for (let i = 0; i < n; i++) queue.push('x', { decided: (o) => (delivered += o.kind === 'delivered' ? 1 : 0) });
  await sleep(150); // deferred, and deferred again from the lane
  assert.equal(delivered, 0);
  sink.xFails = false;
  for (let waited = 0; delivered < n && waited < 10_000; waited += 50) await sleep(50);
  assert.equal(delivered, n);
  assert.equal(sink.written.length, n);
});

/** Defers 'x' at its first write; its retry (the deferred lane's) waits for `release()`. */
class LaneHoldingSink implements Sink<string> {
  readonly name = 'lane-holding';
  readonly written: string[] = [];
  private deferredOnce = false;
  private gate = Promise.withResolvers<void>();
  release(): void {
    this.gate.resolve();
  }
  async write(batch: readonly string[]): Promise<WriteResult> {
    const deferred: number[] = [];
    for (const [i, item] of batch.entries()) {
      if (item !== 'x') this.written.push(item);
      else if (!this.deferredOnce) {
        this.deferredOnce = true;
        deferred.push(i);
      } else {
        await this.gate.promise;
        this.written.push(item);
      }
    }
    return { rejected: [], deferred };
  }
  sizeOf(): number {
    return 1;
  }
  async close(): Promise<void> {}
}

test('items whose linger ran out while the deferred lane held the only write slot go once it is free, not at the next push', async (t) => {
  const sink = new LaneHoldingSink();
  const metrics = createMetrics(new Registry(), { defaultMetrics: false });
  const queue = new BatchQueue(
    sink,
    { maxItems: 10, maxBytes: 1e6, lingerMs: 20, concurrency: 1 },
    { minMs: 10, maxMs: 30 },
    pino({ level: 'silent' }),
    metrics,
  );
  t.after(() => queue.close());
  const x = outcomeOf(queue, 'x');
  await sleep(100); // written once (deferred), then the lane's retry holds the slot
  assert.equal(x(), undefined);
  const y = outcomeOf(queue, 'y');
  await sleep(100); // y's linger runs out while the slot is taken
  assert.equal(y(), undefined, 'nothing written while the lane holds the slot');
  sink.release();
  await sleep(100);
  assert.equal(x()?.kind, 'delivered');
  assert.equal(y()?.kind, 'delivered', 'y went once the slot was free; nothing else was pushed');
  assert.deepEqual(sink.written, ['x', 'y']);
});

/** Items named 'a…' are written at once; the others only once `healed`. Until then each write fails, saying which items it wrote. */
class PartlyFailingSink implements Sink<string> {
  readonly name = 'partly';
  healed = false;
  tries = 0;
  readonly written: string[] = [];
  async write(batch: readonly string[]): Promise<WriteResult> {
    this.tries++;
    const done: number[] = [];
    batch.forEach((item, i) => {
      if (this.healed || item.startsWith('a')) {
        this.written.push(item);
        done.push(i);
      }
    });
    if (done.length < batch.length) throw new SinkError(this.name, 'some partitions timed out', { written: done });
    return { rejected: [] };
  }
  sizeOf(): number {
    return 1;
  }
  async close(): Promise<void> {}
}

test('a write that fails after writing some items settles those at once and tries only the rest again: nothing is written twice', async (t) => {
  const sink = new PartlyFailingSink();
  const metrics = createMetrics(new Registry(), { defaultMetrics: false });
  const queue = new BatchQueue(sink, { maxItems: 10, maxBytes: 1e6, lingerMs: 0 }, { minMs: 10, maxMs: 30 }, pino({ level: 'silent' }), metrics);
  t.after(() => queue.close());
  const items = ['a1', 'b1', 'a2', 'b2', 'a3'];
  const outcomes = items.map((item) => outcomeOf(queue, item));
  await sleep(150);
  assert.ok(sink.tries >= 3, `${sink.tries} tries while failing`);
  assert.deepEqual(
    outcomes.map((o) => o()?.kind),
    ['delivered', undefined, 'delivered', undefined, 'delivered'],
    'the written items are settled while the others are retried',
  );
  sink.healed = true;
  await sleep(100);
  assert.deepEqual(
    outcomes.map((o) => o()?.kind),
    items.map(() => 'delivered'),
  );
  assert.deepEqual([...sink.written].sort(), [...items].sort(), 'each item written once');
});

/** Answers after `delayMs`, rejecting items named 'bad'. */
class SlowSink implements Sink<string> {
  readonly name = 'slow';
  private readonly delayMs: number;
  constructor(delayMs: number) {
    this.delayMs = delayMs;
  }
  async write(batch: readonly string[]): Promise<WriteResult> {
    await sleep(this.delayMs);
    return { rejected: batch.flatMap((item, index) => (item === 'bad' ? [{ index, reason: 'rejected-by-kafka' as const, error: 'refused' }] : [])) };
  }
  sizeOf(): number {
    return 1;
  }
  async close(): Promise<void> {}
}

test("a sink's latency is timed per item from its message's read to durable there; a rejected item is not timed", async (t) => {
  const registry = new Registry();
  const metrics = createMetrics(registry, { defaultMetrics: false });
  const queue = new BatchQueue(new SlowSink(80), { maxItems: 10, maxBytes: 1e6, lingerMs: 20 }, { minMs: 10, maxMs: 30 }, pino({ level: 'silent' }), metrics);
  t.after(() => queue.close());
  const outcomes: Array<Outcome | undefined> = [];
  // read 100 ms before they reach the queue: that wait counts too
  const readAt = monotonicMs() - 100;
  for (const item of ['a', 'b', 'bad']) queue.push(item, { decided: (o) => outcomes.push(o), receivedMs: readAt });
  // a listener that does not know its read time is settled, not timed
  queue.push('c', { decided: (o) => outcomes.push(o) });
  await queue.flushed();
  assert.deepEqual(
    outcomes.map((o) => o?.kind),
    ['delivered', 'delivered', 'rejected', 'delivered'],
  );
  const text = (await registry.getSingleMetricAsString('sluice_sink_latency_seconds')).split('\n');
  const sample = (name: string) => Number(text.find((l) => l.startsWith(name))?.split(' ')[1]);
  assert.equal(sample('sluice_sink_latency_seconds_count{sink="slow"}'), 2, 'the two delivered items that know their read time');
  assert.equal(sample('sluice_sink_latency_seconds_bucket{le="0.15",sink="slow"}'), 0, 'none under the 100 ms before the queue + the 80 ms write');
  assert.equal(sample('sluice_sink_latency_seconds_bucket{le="0.5",sink="slow"}'), 2);
  // A timer counts from the event loop's clock, read when the loop turned, so the 80 ms write
  // can end a few ms early by the monotonic clock the latency is taken with.
  assert.ok(sample('sluice_sink_latency_seconds_sum{sink="slow"}') >= 2 * 0.17, 'each at least 170 ms');
});
