// The write-once archive: every sealed segment of the audit log (one the writer has rotated
// away from, so its bytes never change again; its checkpoints ride inside it) is uploaded to
// S3 under Object Lock with a retention date, so that nobody, root included, can delete or
// rewrite it before then. Off the commit path like the anchors: a store that is down never holds
// a command; segments wait in order, retried, counted as a backlog, and named by readiness once
// the store has failed for too long. At start, whatever sealed segment the archive lacks is
// uploaded (a worker that was down or cut off catches up).
import { createHash } from 'node:crypto';
import { createReadStream, statSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { monotonicMs } from '../../clock.ts';
import { segmentFiles } from '../log/format.ts';
import type { LockedObject } from './s3.ts';

/** What the archiver needs of a store (S3Store in production). */
export interface ArchiveStore {
  objectLockEnabled(): Promise<boolean>;
  keys(prefix: string): Promise<Set<string>>;
  putLocked(o: LockedObject): Promise<'stored' | 'present'>;
  close(): void;
}

export interface ArchiveEvents {
  readonly archived: (segment: string, bytes: number, outcome: 'stored' | 'present') => void;
  readonly failed: (segment: string | undefined, err: Error) => void;
  readonly backlog: (segments: number) => void;
}

export interface ArchiverOptions {
  /** The log's directory. */
  readonly dir: string;
  /** Where this worker's segments go: `<prefix><worker>/<segment>`. */
  readonly keyPrefix: string;
  readonly mode: 'COMPLIANCE' | 'GOVERNANCE';
  readonly retentionDays: number;
  readonly retryMs?: number;
  readonly maxFailingMs: number;
  readonly now?: () => number;
}

export async function sha256OfFile(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

export class SegmentArchiver {
  private readonly store: ArchiveStore;
  private readonly events: ArchiveEvents;
  private readonly options: ArchiverOptions;
  /** Sealed segments not yet in the archive, oldest first. */
  private readonly queue: string[] = [];
  private readonly known = new Set<string>();
  private listed = false;
  private running = false;
  private closed = false;
  private failingSince: number | undefined;
  private lastError = '';
  private wake: (() => void) | undefined;
  private archivedThrough = '';

  constructor(store: ArchiveStore, events: ArchiveEvents, options: ArchiverOptions) {
    this.store = store;
    this.events = events;
    this.options = options;
  }

  /** Every segment of the directory but the newest (the one being written) is sealed. */
  start(): void {
    this.sealedUpTo(segmentFiles(this.options.dir).at(-1));
  }

  /** The writer started `current`: every segment before it is sealed. */
  sealedUpTo(current: string | undefined): void {
    for (const s of segmentFiles(this.options.dir)) {
      if (current !== undefined && s >= current) break;
      if (this.known.has(s)) continue;
      this.known.add(s);
      this.queue.push(s);
    }
    this.events.backlog(this.queue.length);
    void this.drain();
  }

  get backlog(): number {
    return this.queue.length;
  }

  /** The newest segment the archive holds (uploaded or found there), '' before the first. */
  get newestArchived(): string {
    return this.archivedThrough;
  }

  failingMs(): number {
    return this.failingSince === undefined ? 0 : monotonicMs() - this.failingSince;
  }

  problems(): string[] {
    const failing = this.failingMs();
    if (failing <= this.options.maxFailingMs) return [];
    return [
      `audit archive: uploads have failed for ${Math.round(failing / 1000)} s (${this.lastError}): ${this.queue.length} sealed segment(s) wait, the oldest ${this.queue[0] ?? '-'}`,
    ];
  }

  /** Waits up to `deadlineMs` for the backlog, then stops. */
  async close(deadlineMs = 5_000): Promise<void> {
    const until = monotonicMs() + deadlineMs;
    while (this.queue.length > 0 && this.failingSince === undefined && monotonicMs() < until) await delay(20, undefined, { ref: false });
    this.closed = true;
    this.wake?.();
    this.store.close();
  }

  private async drain(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      while (!this.closed && this.queue.length > 0) {
        const segment = this.listed ? (this.queue[0] as string) : undefined;
        try {
          if (segment === undefined) await this.list();
          else {
            await this.upload(segment);
            this.queue.shift();
            this.archivedThrough = segment;
          }
          this.failingSince = undefined;
          this.events.backlog(this.queue.length);
        } catch (err) {
          this.failingSince ??= monotonicMs();
          this.lastError = (err as Error).message;
          this.events.failed(segment, err as Error);
          await this.pause();
        }
      }
    } finally {
      this.running = false;
    }
  }

  /** The retry wait; close() cuts it short. */
  private pause(): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, this.options.retryMs ?? 30_000);
      timer.unref();
      this.wake = () => {
        if (!this.closed) return;
        clearTimeout(timer);
        resolve();
      };
    }).finally(() => {
      this.wake = undefined;
    });
  }

  /** Once per start: the bucket is checked and what an earlier run uploaded is not sent again. */
  private async list(): Promise<void> {
    // a bucket without Object Lock would take objects anyone can delete
    if (!(await this.store.objectLockEnabled())) {
      throw new Error(`the bucket has no Object Lock: create it with Object Lock enabled (segments there could be deleted)`);
    }
    const present = await this.store.keys(this.options.keyPrefix);
    for (let i = this.queue.length - 1; i >= 0; i--) {
      if (!present.has(this.key(this.queue[i] as string))) continue;
      this.archivedThrough = [this.archivedThrough, this.queue[i] as string].sort().at(-1) as string;
      this.queue.splice(i, 1);
    }
    this.listed = true;
  }

  private async upload(segment: string): Promise<void> {
    const file = join(this.options.dir, segment);
    const size = statSync(file).size;
    const sha256 = await sha256OfFile(file);
    const now = this.options.now?.() ?? Date.now();
    const outcome = await this.store.putLocked({
      key: this.key(segment),
      file,
      size,
      sha256,
      mode: this.options.mode,
      retainUntil: new Date(now + this.options.retentionDays * 86_400_000),
    });
    this.events.archived(segment, size, outcome);
  }

  private key(segment: string): string {
    return `${this.options.keyPrefix}${segment}`;
  }
}
