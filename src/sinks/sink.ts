// The contract every sink keeps: write(batch) resolves when the whole batch is durable, except
// the items it names as rejected (bad data: they go to the dead-letter topic); it rejects with a
// SinkError when the batch should be tried again later (the sink is down or overloaded). Whether
// a failure is retriable or the data's fault is decided once, inside each sink.
import type { DeadLetterReason } from '../router/outputs.ts';

export interface Rejection {
  readonly index: number;
  readonly reason: DeadLetterReason;
  readonly error: string;
}

export interface WriteResult {
  readonly rejected: readonly Rejection[];
}

export const allDurable: WriteResult = Object.freeze({ rejected: [] });

export interface Sink<T> {
  readonly name: 'kafka' | 'influx';
  write(batch: readonly T[]): Promise<WriteResult>;
  /** Bytes an item adds to a batch, for batch limits. */
  sizeOf(item: T): number;
  close(): Promise<void>;
}

export class SinkError extends Error {
  override readonly name = 'SinkError';
  readonly sink: string;
  /** The server asked us to wait this long (Retry-After). */
  readonly retryAfterMs: number | undefined;
  constructor(sink: string, message: string, options: { cause?: unknown; retryAfterMs?: number | undefined } = {}) {
    super(message, { cause: options.cause });
    this.sink = sink;
    this.retryAfterMs = options.retryAfterMs;
  }
}

/** Exponential backoff with full jitter. */
export function backoffMs(attempt: number, minMs: number, maxMs: number, random = Math.random): number {
  const ceiling = Math.min(maxMs, minMs * 2 ** Math.min(attempt, 30));
  return Math.max(minMs, Math.round(ceiling * random()));
}
