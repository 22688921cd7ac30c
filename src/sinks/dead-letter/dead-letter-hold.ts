// deadLetter.to: hold. There is nowhere to write a refused message, so it is never acknowledged:
// every write fails (the queue retries it, with backoff), the sink reports unhealthy and /readyz
// names how many are held. The broker keeps the message, and, since acks leave in order, the
// messages behind it: the worker stops taking more once Receive Maximum is reached. Nothing is
// lost; an operator fixes the cause or restarts with a dead-letter destination.

import type { DeadLetterItem } from '../sink.ts';
import { type Sink, SinkError, type WriteResult } from '../sink.ts';

export class HoldDeadLetters implements Sink<DeadLetterItem> {
  readonly name = 'dead-letter';
  /** The refused messages of the last attempt (the queue offers the same ones again). */
  private held = 0;
  private firstReason = '';

  sizeOf(item: DeadLetterItem): number {
    return item.message.payload.length + 512;
  }

  async write(batch: readonly DeadLetterItem[]): Promise<WriteResult> {
    this.held = batch.length;
    const first = batch[0];
    this.firstReason = first ? `${first.refusals[0]?.reason ?? '?'} on ${first.message.topic}` : '';
    throw new SinkError(this.name, this.why());
  }

  problems(): readonly string[] {
    return this.held > 0 ? [`dead-letter: ${this.why()}`] : [];
  }

  async close(): Promise<void> {
    // nothing to close: nothing was ever written
  }

  private why(): string {
    return `holding ${this.held} refused message(s) unacknowledged (deadLetter.to: hold; first: ${this.firstReason}): fix the cause, or restart with deadLetter.to kafka or file`;
  }
}
