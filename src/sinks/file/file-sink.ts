// The file sink: JSON lines appended to one file, a batch resolving only after write +
// fdatasync, so an acknowledged message is on disk (what Telegraf's file output is to its
// users, for debugging and archiving, with sluice's guarantee). A full disk (ENOSPC, EDQUOT)
// holds the batch: the file is cut back to what was durable before it (and that cut synced),
// and the write fails retriably, so the queue retries it when there is room and the broker keeps
// the backlog meanwhile. Any other failed write or fsync, or a cut that fails, is fatal, as for
// the audit log: the page cache may have dropped the data and a retry could falsely succeed. A
// crash may leave a torn last line (never acknowledged): the file is reopened for append and a
// torn tail is ended with a newline, so every line stays parseable except that one.
import { type FileHandle, mkdir, open } from 'node:fs/promises';
import { dirname } from 'node:path';
import { writeFully } from '../../write-fully.ts';
import { allDurable, type Sink, SinkError, type WriteResult } from '../sink.ts';

export class FileSink implements Sink<string> {
  readonly name: string;
  readonly path: string;
  private handle: FileHandle | undefined;
  /** The file's length once the last batch was durable: where a batch cut short by a full disk is cut back to. */
  private durable = 0;
  private fatal: Error | undefined;

  constructor(path: string, name = 'file') {
    this.path = path;
    this.name = name;
  }

  async start(): Promise<void> {
    if (this.handle) return;
    await mkdir(dirname(this.path), { recursive: true });
    const handle = await open(this.path, 'a+');
    const { size } = await handle.stat();
    if (size > 0) {
      const last = Buffer.alloc(1);
      await handle.read(last, 0, 1, size - 1);
      if (last[0] !== 0x0a) await handle.write('\n'); // end a torn line left by a crash
    }
    this.durable = (await handle.stat()).size;
    this.handle = handle;
  }

  sizeOf(line: string): number {
    return line.length + 1;
  }

  async write(batch: readonly string[]): Promise<WriteResult> {
    if (this.fatal) throw new SinkError(this.name, this.fatal.message, { retriable: false });
    if (!this.handle) {
      try {
        await this.start();
      } catch (err) {
        throw new SinkError(this.name, `cannot open ${this.path}: ${(err as Error).message}`, { cause: err });
      }
    }
    const handle = this.handle as FileHandle;
    const data = Buffer.from(`${batch.join('\n')}\n`);
    try {
      await writeFully(handle, data); // a short write on a nearly full disk is not a whole one
      await handle.datasync();
      this.durable += data.length;
    } catch (err) {
      if (await this.cutBack(handle, err))
        throw new SinkError(this.name, `${this.path}: disk full (${(err as NodeJS.ErrnoException).code}): the batch waits for room`, { cause: err });
      this.fatal = new Error(`write or fsync of ${this.path} failed: ${(err as Error).message}; stopping (never retried)`);
      throw new SinkError(this.name, this.fatal.message, { cause: err, retriable: false });
    }
    return allDurable;
  }

  /**
   * After a full disk: the file cut back to its durable length and that synced, so the batch can
   * be written again whole (not the same dirty pages synced again). False for any other failure.
   */
  private async cutBack(handle: FileHandle, err: unknown): Promise<boolean> {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOSPC' && code !== 'EDQUOT') return false;
    try {
      await handle.truncate(this.durable);
      await handle.datasync();
      return true;
    } catch {
      return false; // not a regular file (/dev/full), or the cut failed: nothing can be promised
    }
  }

  problems(): readonly string[] {
    return this.fatal ? [`${this.name}: failed (stopping): ${this.fatal.message}`] : [];
  }

  async close(): Promise<void> {
    await this.handle?.close();
    this.handle = undefined;
  }
}
