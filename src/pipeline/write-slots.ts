// A batch queue's writes: at most `concurrency` run at once, the others start in the order they
// were added as places free up. This is all a batch queue needs of a task queue, written so
// that a write keeps nothing alive past its end: p-queue, which did this before, keeps each
// running task in a Map that a queue with one write at a time empties after every batch, and V8
// replaces an emptied Map's table with a new one in the old generation once the Map lives there
// (~2 MiB of old-generation garbage a minute at 1,000 msg/s, docs/benchmarks.md).

export class WriteSlots {
  private running = 0;
  private readonly waiting: Array<() => void> = [];
  private idle: Array<() => void> = [];
  private readonly concurrency: number;

  constructor(concurrency: number) {
    this.concurrency = Math.max(1, concurrency);
  }

  /** Writes running or waiting for a place. */
  get count(): number {
    return this.running + this.waiting.length;
  }

  /**
   * Runs `write` once a place is free. Settles as the write did, after its place is given
   * back (and the next waiting write started), so a caller that adds more on settling sees it.
   */
  add(write: () => Promise<void>): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const run = () => {
        this.running++;
        let written: Promise<void>;
        try {
          written = write();
        } catch (err) {
          written = Promise.reject(err); // a write that throws gives its place back like one that rejects
        }
        written.then(
          () => {
            this.release();
            resolve();
          },
          (err: unknown) => {
            this.release();
            reject(err);
          },
        );
      };
      if (this.running < this.concurrency) run();
      else this.waiting.push(run);
    });
  }

  /** Resolves once nothing runs or waits. */
  onIdle(): Promise<void> {
    if (this.count === 0) return Promise.resolve();
    return new Promise<void>((resolve) => this.idle.push(resolve));
  }

  /** Drops the writes not yet started (they never run; their promises never settle). */
  clear(): void {
    this.waiting.length = 0;
    if (this.running === 0) this.wakeIdle();
  }

  private release(): void {
    this.running--;
    const next = this.waiting.shift();
    if (next) next();
    else if (this.running === 0) this.wakeIdle();
  }

  private wakeIdle(): void {
    if (this.idle.length === 0) return;
    const idle = this.idle;
    this.idle = [];
    for (const resolve of idle) resolve();
  }
}
