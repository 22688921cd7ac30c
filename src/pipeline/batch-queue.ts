// Sits in front of one sink: gathers items into batches (count, bytes, linger; a part batch
// goes at once when an ack window fills, since nothing more can arrive), writes up to
// `concurrency` batches at once (1 where order or a single request in flight matters),
// retries a batch that failed retriably with backoff until it is durable (nothing is acked
// meanwhile, so nothing is lost), and tells each item's listener its outcome exactly once. A
// fatal failure is told to every listener of the batch and stops the queue. Its length is
// bounded by the ack window: at most Receive Maximum messages are in flight. Items a sink
// defers (one destination failing on its own) wait in a lane of their own, retried alone with
// backoff so they never hold the rest, and are rejected as destination-unavailable (so they
// become dead letters and the window moves on) once deferred longer than stuckAfterMs. That
// clock runs only while the sink answers: time in which its writes fail as a whole (the
// cluster down) is an outage, held, and never makes a deferred item stuck.
import type { Logger } from 'pino';
import { backoffMs } from '../backoff.ts';
import { monotonicMs } from '../clock.ts';
import type { HistogramCell } from '../observability/hot-metrics.ts';
import type { Metrics } from '../observability/metrics.ts';
import { delivered, type Outcome, type OutcomeListener } from '../outcome.ts';
import { type BatchLimits, type Sink, SinkError, type WriteResult } from '../sinks/sink.ts';
import { WriteSlots } from './write-slots.ts';

interface Deferred<T> {
  readonly item: T;
  readonly listener: OutcomeListener;
  /** When it was first deferred, on the queue's answering clock (`answeringMs`). */
  readonly since: number;
}

export class BatchQueue<T> {
  private items: T[] = [];
  private listeners: OutcomeListener[] = [];
  /** Each item's size, computed once. */
  private sizes: number[] = [];
  private bytes = 0;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private fatal: Error | undefined;
  private failing = 0;
  /** The time the sink has failed as a whole so far (the periods ended), and when the current one began. */
  private downMs = 0;
  private downSince = 0;
  /** The last retriable failure's message, while failing (for /readyz). */
  lastError: string | undefined;
  private lastLoggedAt = 0;
  private readonly writes: WriteSlots;
  private readonly sink: Sink<T>;
  private readonly limits: BatchLimits;
  private readonly retry: { minMs: number; maxMs: number };
  private readonly log: Logger;
  private readonly metrics: Metrics;
  private readonly concurrency: number;
  private readonly labels: { sink: string };
  /** From reading a message to durable here, per item. */
  private readonly latency: HistogramCell;
  private lane: Array<Deferred<T>> = [];
  private laneTimer: NodeJS.Timeout | undefined;
  private laneAttempt = 0;

  constructor(sink: Sink<T>, limits: BatchLimits, retry: { minMs: number; maxMs: number }, log: Logger, metrics: Metrics) {
    this.sink = sink;
    this.limits = limits;
    this.retry = retry;
    this.log = log;
    this.metrics = metrics;
    this.concurrency = Math.max(1, limits.concurrency ?? 1);
    this.writes = new WriteSlots(this.concurrency);
    this.labels = { sink: sink.name };
    this.latency = metrics.sinkLatency.labels(sink.name);
    metrics.sinkHealthy.set(this.labels, 1);
  }

  /** false while writes to the sink fail (retried) or after a fatal failure: /readyz reports it. */
  get healthy(): boolean {
    return this.failing === 0 && this.fatal === undefined;
  }

  push(item: T, listener: OutcomeListener): void {
    if (this.fatal) {
      listener.decided({ kind: 'fatal', error: this.fatal });
      return;
    }
    this.items.push(item);
    this.listeners.push(listener);
    const size = this.sink.sizeOf(item);
    this.sizes.push(size);
    this.bytes += size;
    if (this.items.length >= this.limits.maxItems || this.bytes >= this.limits.maxBytes || this.limits.lingerMs === 0) this.startWrites();
    else this.timer ??= setTimeout(() => this.startWrites(true), this.limits.lingerMs);
  }

  /**
   * A part batch waiting for its linger goes now: the ack window is full, so nothing more
   * arrives until something in flight settles, and waiting would only hold the window shut.
   */
  flushWaiting(): void {
    if (this.timer) this.startWrites(true);
  }

  /** Resolves once everything pushed so far is written (or rejected). */
  async flushed(): Promise<void> {
    this.startWrites(true);
    while (this.items.length > 0 || this.writes.count > 0) {
      if (this.closed) return;
      await this.writes.onIdle();
      this.startWrites(true);
    }
  }

  /** Stops retrying: what is still unwritten stays unacked (the broker redelivers it). */
  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.laneTimer) clearTimeout(this.laneTimer);
    this.writes.clear();
  }

  /**
   * Starts as many batch writes as the concurrency allows. Without `lingered`, only full
   * batches go: a part batch waits for its linger, or for a write to finish.
   */
  private startWrites(lingered = false): void {
    if (this.timer && (lingered || this.items.length === 0)) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    while (this.items.length > 0 && !this.closed && this.writes.count < this.concurrency) {
      const { items, listeners } = this.takeBatch();
      void this.write(items, listeners);
    }
  }

  /**
   * Every write, a batch's or the deferred lane's, goes through here. When it settles its
   * slot is free, so items that wait go at once: those that arrived while it ran, and those
   * whose linger ran out while every slot was taken (that timer started nothing); otherwise
   * they would wait for the next push, which a quiet device may never send.
   */
  private write(items: T[], listeners: OutcomeListener[], since?: readonly number[]): Promise<void> {
    return this.writes
      .add(() => this.writeUntilDurable(items, listeners, since))
      .then(() => {
        if (this.items.length > 0) this.startWrites(true);
      });
  }

  private takeBatch(): { items: T[]; listeners: OutcomeListener[] } {
    let n = 0;
    let bytes = 0;
    while (n < this.items.length && n < this.limits.maxItems) {
      bytes += this.sizes[n] as number;
      if (n > 0 && bytes > this.limits.maxBytes) break;
      n++;
    }
    const items = this.items.splice(0, n);
    const listeners = this.listeners.splice(0, n);
    for (const size of this.sizes.splice(0, n)) this.bytes -= size;
    return { items, listeners };
  }

  /** `since`: for items from the deferred lane, when each was first deferred. */
  private async writeUntilDurable(items: T[], listeners: OutcomeListener[], since?: readonly number[]): Promise<void> {
    const name = this.sink.name;
    let wasFailing = false;
    for (let attempt = 0; !this.closed; attempt++) {
      const stop = this.metrics.sinkWriteSeconds.startTimer(this.labels);
      let result: WriteResult;
      try {
        result = await this.sink.write(items);
      } catch (err) {
        stop();
        this.metrics.sinkWriteErrors.inc(this.labels);
        if (err instanceof SinkError && !err.retriable) {
          this.becameFatal(err, listeners);
          return;
        }
        if (err instanceof SinkError && err.written) {
          // what the failed write made durable all the same is settled; only the rest is tried again
          const written = new Set(err.written);
          const left = (_: unknown, i: number) => !written.has(i);
          const now = monotonicMs();
          for (const i of written) {
            const listener = listeners[i];
            if (!listener) continue;
            this.observeLatency(listener, now);
            listener.decided(delivered);
          }
          items = items.filter(left);
          listeners = listeners.filter(left);
          since = since?.filter(left);
        }
        const wait = err instanceof SinkError && err.retryAfterMs !== undefined ? err.retryAfterMs : backoffMs(attempt, this.retry.minMs, this.retry.maxMs);
        this.lastError = (err as Error).message;
        if (!wasFailing) {
          wasFailing = true;
          if (this.failing++ === 0) {
            this.downSince = monotonicMs();
            // one line when a sink goes down and one when it comes back (and a reminder a
            // minute), not one per retry
            this.lastLoggedAt = monotonicMs();
            this.log.error({ err: this.lastError, retryInMs: wait, batch: items.length }, 'sink write failed; retrying until durable');
            this.metrics.sinkHealthy.set(this.labels, 0);
          }
        } else if (monotonicMs() - this.lastLoggedAt >= 60_000) {
          this.lastLoggedAt = monotonicMs();
          this.log.error({ err: this.lastError, attempts: attempt + 1, batch: items.length }, 'sink still failing; retrying until durable');
        }
        await new Promise((r) => setTimeout(r, wait));
        continue;
      }
      stop();
      this.metrics.sinkBatchSize.observe(this.labels, items.length);
      if (wasFailing && --this.failing === 0) {
        this.downMs += monotonicMs() - this.downSince;
        if (this.fatal === undefined) {
          this.lastError = undefined;
          this.log.info({ attempts: attempt + 1 }, 'sink recovered');
          this.metrics.sinkHealthy.set(this.labels, 1);
        }
      }
      this.report(result, items, listeners, name, since);
      return;
    }
  }

  private report(result: WriteResult, items: readonly T[], listeners: readonly OutcomeListener[], sink: string, since?: readonly number[]): void {
    const rejected = result.rejected.length === 0 ? undefined : new Map(result.rejected.map((r) => [r.index, r]));
    const annotations = result.annotations;
    const deferred = result.deferred && result.deferred.length > 0 ? new Set(result.deferred) : undefined;
    if (since) this.laneAttempt = deferred && deferred.size === items.length ? this.laneAttempt + 1 : 0;
    const now = deferred ? this.answeringMs() : 0;
    const at = monotonicMs();
    const again: Array<Deferred<T>> = [];
    for (let i = 0; i < listeners.length; i++) {
      if (deferred?.has(i)) {
        again.push({ item: items[i] as T, listener: listeners[i] as OutcomeListener, since: since?.[i] ?? now });
        continue;
      }
      const r = rejected?.get(i);
      const a = annotations?.[i];
      const outcome: Outcome = r
        ? { kind: 'rejected', refusal: { reason: r.reason, stage: 'write', sink, error: r.error } }
        : a
          ? { kind: 'delivered', annotations: a }
          : delivered;
      if (outcome.kind === 'delivered') this.observeLatency(listeners[i] as OutcomeListener, at);
      (listeners[i] as OutcomeListener).decided(outcome);
    }
    if (deferred) {
      // the lane stays in arrival order: items from the lane deferred again go back to its front
      // (the sink keeps a destination's order by deferring newer items behind them)
      // (not spread into arguments: a batch of over ~150,000 items would overflow the stack)
      if (since) this.lane = again.concat(this.lane);
      else for (const d of again) this.lane.push(d);
      this.metrics.sinkDeferred.set(this.labels, this.lane.length);
      this.scheduleLane();
    }
  }

  private observeLatency(listener: OutcomeListener, now: number): void {
    if (listener.receivedMs !== undefined) this.latency.observe((now - listener.receivedMs) / 1000);
  }

  /** The deferred lane: the stuck ones rejected, the others tried again alone, with backoff. */
  private scheduleLane(): void {
    if (this.laneTimer || this.closed || this.lane.length === 0) return;
    const wait = backoffMs(this.laneAttempt, this.retry.minMs, this.retry.maxMs);
    this.laneTimer = setTimeout(() => {
      this.laneTimer = undefined;
      this.runLane();
    }, wait);
  }

  private runLane(): void {
    if (this.closed) return;
    const stuckAfterMs = this.limits.stuckAfterMs;
    const now = this.answeringMs();
    if (stuckAfterMs !== undefined) {
      const keep: Array<Deferred<T>> = [];
      for (const d of this.lane) {
        if (now - d.since < stuckAfterMs) keep.push(d);
        else {
          const error = `${this.sink.giveUp?.(d.item) ?? 'destination unavailable'}; not writable for ${Math.round((now - d.since) / 1000)} s while the sink answered (stuckAfterMs ${stuckAfterMs})`;
          d.listener.decided({ kind: 'rejected', refusal: { reason: 'destination-unavailable', stage: 'write', sink: this.sink.name, error } });
        }
      }
      this.lane = keep;
    }
    const take = this.lane.splice(0, this.limits.maxItems);
    this.metrics.sinkDeferred.set(this.labels, this.lane.length);
    if (take.length === 0) return;
    void this.write(
      take.map((d) => d.item),
      take.map((d) => d.listener),
      take.map((d) => d.since),
    ).then(() => this.scheduleLane());
  }

  /** A clock that stops while the sink's writes fail as a whole: how long a deferred item has been stuck on its own. */
  private answeringMs(): number {
    const now = monotonicMs();
    return now - this.downMs - (this.failing > 0 ? now - this.downSince : 0);
  }

  private becameFatal(err: Error, listeners: readonly OutcomeListener[]): void {
    this.fatal ??= err;
    this.metrics.sinkHealthy.set(this.labels, 0);
    const outcome: Outcome = { kind: 'fatal', error: err };
    for (const l of listeners) l.decided(outcome);
    for (const l of this.listeners.splice(0)) l.decided(outcome);
    for (const d of this.lane.splice(0)) d.listener.decided(outcome);
    this.items = [];
    this.sizes = [];
    this.bytes = 0;
    this.close();
  }
}
