// The contract every sink keeps (docs/sinks.md): write(batch) resolves once the whole batch is
// durable, except the items it names as rejected (the data's fault: they become dead letters)
// or deferred (their own destination is not ready: the queue writes them again, alone);
// it rejects with a SinkError that says whether trying again can help (the server is down or
// busy: retriable, and nothing is acknowledged meanwhile) or not (the sink can no longer be
// trusted, e.g. a failed fsync: fatal, the worker stops). That call is made once, inside each sink.
import type { Message } from '../message.ts';
import type { Refusal } from '../outcome.ts';

export interface ItemRejection {
  readonly index: number;
  /** A reason from the sink's own closed list (a metric label). */
  readonly reason: string;
  readonly error: string;
}

export interface WriteResult {
  readonly rejected: readonly ItemRejection[];
  /**
   * Items not durable yet through no fault of theirs nor of the whole sink (one destination
   * failing on its own: a deleted topic): the queue retries them alone, so they do not hold
   * the rest, and dead-letters them (destination-unavailable) once stuck too long.
   */
  readonly deferred?: readonly number[];
  /** Per item, handed on to the outputs that follow (only phase-0 sinks: the audit record's sequence number). */
  readonly annotations?: ReadonlyArray<Readonly<Record<string, string>> | undefined>;
}

/** How a sink's items are batched: its queue fills a batch up to these, then writes it. */
export interface BatchLimits {
  readonly maxItems: number;
  readonly maxBytes: number;
  readonly lingerMs: number;
  /** Batches written at once (default 1). */
  readonly concurrency?: number;
  /** A deferred item waits this long at most, then it is rejected (destination-unavailable). */
  readonly stuckAfterMs?: number;
}

/** What the dead letter takes: the message and every reason it was refused (the first is the metric label). */
export interface DeadLetterItem {
  readonly message: Message;
  readonly refusals: readonly Refusal[];
}

export const allDurable: WriteResult = Object.freeze({ rejected: Object.freeze([]) });

export interface Sink<Item> {
  /** The sink's name: the metric label, the dead letter's sluice-sink header, the registry key. */
  readonly name: string;
  /**
   * Connects and checks what it needs (a topic, a directory). Rejects while the sink is not
   * usable yet; the worker retries with backoff and is not ready meanwhile.
   */
  start?(): Promise<void>;
  write(batch: readonly Item[]): Promise<WriteResult>;
  /** Bytes an item adds to a batch, for the batch limits. */
  sizeOf(item: Item): number;
  /** Problems that make the worker not ready beyond a failing write (e.g. a fatal state, a failing topic). */
  problems?(): readonly string[];
  /** Why a deferred item is still not written: the dead letter's error once it was stuck too long. */
  giveUp?(item: Item): string;
  /** Releases what it holds; called once its queue is flushed. */
  close(): Promise<void>;
}

export class SinkError extends Error {
  override readonly name = 'SinkError';
  readonly sink: string;
  /** false: trying again cannot help and must not be done (a failed fsync); the worker stops. */
  readonly retriable: boolean;
  /** The server asked us to wait this long (Retry-After). */
  readonly retryAfterMs: number | undefined;
  /**
   * Items of the batch (indexes) the server answered as durable although the write failed: they
   * are settled, and only the rest is tried again (written again, they would be there twice).
   */
  readonly written: readonly number[] | undefined;
  constructor(
    sink: string,
    message: string,
    options: { cause?: unknown; retryAfterMs?: number | undefined; retriable?: boolean; written?: readonly number[] | undefined } = {},
  ) {
    super(message, { cause: options.cause });
    this.sink = sink;
    this.retriable = options.retriable ?? true;
    this.retryAfterMs = options.retryAfterMs;
    this.written = options.written && options.written.length > 0 ? options.written : undefined;
  }
}
