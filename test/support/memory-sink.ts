// A sink held in memory for the pipeline's unit tests: it keeps what it was given, and the test
// decides what each write does (resolve, hold until released, fail retriably, reject an item,
// fail for good). The real sinks are proven against their servers by the conformance suite.
import type { Sink, WriteResult } from '../../src/sinks/sink.ts';
import { SinkError } from '../../src/sinks/sink.ts';

export type WriteBehaviour = (batch: readonly unknown[]) => WriteResult | Promise<WriteResult>;

export class MemorySink<T = unknown> implements Sink<T> {
  readonly name: string;
  readonly written: T[] = [];
  writes = 0;
  behaviour: WriteBehaviour = () => ({ rejected: [] });
  private held: Array<() => void> = [];
  holding = false;

  constructor(name: string) {
    this.name = name;
  }

  sizeOf(): number {
    return 1;
  }

  async write(batch: readonly T[]): Promise<WriteResult> {
    this.writes++;
    if (this.holding) await new Promise<void>((resolve) => this.held.push(resolve));
    const result = await this.behaviour(batch);
    const rejected = new Set(result.rejected.map((r) => r.index));
    batch.forEach((item, i) => {
      if (!rejected.has(i)) this.written.push(item);
    });
    return result;
  }

  /** Lets every held write go on. */
  release(): void {
    this.holding = false;
    for (const r of this.held.splice(0)) r();
  }

  async close(): Promise<void> {}
}

export const failRetriably =
  (sink: string): WriteBehaviour =>
  () => {
    throw new SinkError(sink, 'server down');
  };

export const failForGood =
  (sink: string): WriteBehaviour =>
  () => {
    throw new SinkError(sink, 'fsync failed', { retriable: false });
  };
