// Sits in front of one sink: gathers items into batches (size, bytes, linger), writes one batch
// at a time, retries a failed batch with backoff until it is durable (nothing is acked
// meanwhile, so nothing is lost), and reports each item's outcome to its owner. Its length is
// bounded by the ack window: at most Receive Maximum messages are in flight.
import type { Logger } from 'pino';
import type { Metrics } from '../observability/metrics.ts';
import { backoffMs, SinkError, type Rejection, type Sink } from './sink.ts';

/** The owner of an item: told once whether the item is durable or was rejected. */
export interface ItemOwner {
  delivered(): void;
  rejected(rejection: Omit<Rejection, 'index'>): void;
}

export interface BatchLimits {
  readonly maxItems: number;
  readonly maxBytes: number;
  readonly lingerMs: number;
}

export class BatchQueue<T> {
  private items: T[] = [];
  private owners: ItemOwner[] = [];
  /** Each item's size, computed once. */
  private sizes: number[] = [];
  private bytes = 0;
  private writing = false;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private idle: Array<() => void> = [];
  /** false while the sink is failing: /readyz reports it. */
  healthy = true;
  private readonly sink: Sink<T>;
  private readonly limits: BatchLimits;
  private readonly retry: { minMs: number; maxMs: number };
  private readonly log: Logger;
  private readonly metrics: Metrics;

  constructor(sink: Sink<T>, limits: BatchLimits, retry: { minMs: number; maxMs: number }, log: Logger, metrics: Metrics) {
    this.sink = sink;
    this.limits = limits;
    this.retry = retry;
    this.log = log;
    this.metrics = metrics;
  }

  get pending(): number {
    return this.items.length;
  }

  push(item: T, owner: ItemOwner): void {
    this.items.push(item);
    this.owners.push(owner);
    const size = this.sink.sizeOf(item);
    this.sizes.push(size);
    this.bytes += size;
    if (this.writing) return; // the running writer picks it up next
    if (this.items.length >= this.limits.maxItems || this.bytes >= this.limits.maxBytes || this.limits.lingerMs === 0) {
      this.startWriting();
    } else {
      this.timer ??= setTimeout(() => this.startWriting(), this.limits.lingerMs);
    }
  }

  /** Resolves once everything pushed so far is written (or rejected). */
  async flushed(): Promise<void> {
    if (this.items.length === 0 && !this.writing) return;
    if (!this.writing) this.startWriting();
    await new Promise<void>((resolve) => this.idle.push(resolve));
  }

  /** Stops retrying: what is still unwritten stays unacked (the broker redelivers it). */
  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
  }

  private startWriting(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.writing || this.items.length === 0) return;
    this.writing = true;
    void this.writeLoop();
  }

  private takeBatch(): { items: T[]; owners: ItemOwner[] } {
    let n = 0;
    let bytes = 0;
    while (n < this.items.length && n < this.limits.maxItems) {
      bytes += this.sizes[n] as number;
      if (n > 0 && bytes > this.limits.maxBytes) break;
      n++;
    }
    const items = this.items.splice(0, n);
    const owners = this.owners.splice(0, n);
    for (const size of this.sizes.splice(0, n)) this.bytes -= size;
    return { items, owners };
  }

  private async writeLoop(): Promise<void> {
    try {
      while (this.items.length > 0 && !this.closed) {
        const { items, owners } = this.takeBatch();
        await this.writeUntilDurable(items, owners);
      }
    } finally {
      this.writing = false;
      const idle = this.idle;
      this.idle = [];
      for (const resolve of idle) resolve();
      // items that arrived while the last write finished
      if (this.items.length > 0 && !this.closed) this.startWriting();
    }
  }

  private async writeUntilDurable(items: T[], owners: ItemOwner[]): Promise<void> {
    const name = this.sink.name;
    for (let attempt = 0; !this.closed; attempt++) {
      const stop = this.metrics.sinkWriteSeconds.startTimer({ sink: name });
      try {
        const result = await this.sink.write(items);
        stop();
        this.metrics.sinkBatchSize.observe({ sink: name }, items.length);
        if (!this.healthy) this.log.info({ sink: name, attempts: attempt + 1 }, 'sink recovered');
        this.healthy = true;
        this.metrics.sinkHealthy.set({ sink: name }, 1);
        const rejected = new Map(result.rejected.map((r) => [r.index, r]));
        for (const [i, owner] of owners.entries()) {
          const r = rejected.get(i);
          if (r) owner.rejected({ reason: r.reason, error: r.error });
          else owner.delivered();
        }
        return;
      } catch (err) {
        stop();
        const wait = err instanceof SinkError && err.retryAfterMs !== undefined
          ? err.retryAfterMs
          : backoffMs(attempt, this.retry.minMs, this.retry.maxMs);
        this.metrics.sinkWriteErrors.inc({ sink: name });
        if (this.healthy) {
          // one line when a sink goes down and one when it comes back, not one per retry
          this.log.error({ sink: name, err, retryInMs: wait, batch: items.length }, 'sink write failed; retrying until durable');
        }
        this.healthy = false;
        this.metrics.sinkHealthy.set({ sink: name }, 0);
        await new Promise((r) => setTimeout(r, wait));
      }
    }
  }
}
