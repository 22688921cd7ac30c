// Group commit for an fsync'd file: items submitted while a commit runs wait and share the next
// one, so N concurrent callers cost one write + fdatasync, not N. A failed commit is fatal and
// never retried (after a failed fsync the page cache may have dropped the data, and a retry
// could falsely succeed): every waiting caller is rejected, later ones too.

export class AuditFatalError extends Error {
  override readonly name = 'AuditFatalError';
}

interface Waiting<T, R> {
  readonly item: T;
  resolve(result: R): void;
  reject(err: Error): void;
}

export class GroupCommit<T, R> {
  private pending: Array<Waiting<T, R>> = [];
  private running = false;
  private kicked = false;
  private failed: AuditFatalError | undefined;
  /** Writes and syncs one batch (possibly empty when kicked); returns each item's result in order. */
  private readonly commit: (batch: readonly T[]) => Promise<readonly R[]>;
  private readonly onFatal: ((err: AuditFatalError) => void) | undefined;

  constructor(commit: (batch: readonly T[]) => Promise<readonly R[]>, onFatal?: (err: AuditFatalError) => void) {
    this.commit = commit;
    this.onFatal = onFatal;
  }

  /** Resolves with the item's result once its batch is durable. */
  submit(item: T): Promise<R> {
    if (this.failed) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => {
      this.pending.push({ item, resolve, reject });
      this.start();
    });
  }

  /** Runs a commit even with nothing waiting (a due checkpoint, say). */
  kick(): void {
    if (this.failed) return;
    this.kicked = true;
    this.start();
  }

  /** Resolves when no commit is running. */
  async idle(): Promise<void> {
    while (this.running) await new Promise((r) => setTimeout(r, 5));
  }

  private start(): void {
    if (this.running) return;
    this.running = true;
    setImmediate(() => void this.run());
  }

  private async run(): Promise<void> {
    let batch: Array<Waiting<T, R>> = [];
    try {
      while ((this.pending.length > 0 || this.kicked) && !this.failed) {
        this.kicked = false;
        batch = this.pending;
        this.pending = [];
        const results = await this.commit(batch.map((w) => w.item));
        for (const [i, w] of batch.entries()) w.resolve(results[i] as R);
        batch = [];
      }
    } catch (err) {
      this.failed = err instanceof AuditFatalError ? err : new AuditFatalError(`${(err as Error).message}; stopping (never retried)`, { cause: err });
      // the batch being written is not durable: its callers must hear it (no ack for them)
      for (const w of [...batch, ...this.pending]) w.reject(this.failed);
      this.pending = [];
      this.onFatal?.(this.failed);
    } finally {
      this.running = false;
    }
  }
}
