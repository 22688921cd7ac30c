// The file sink: JSON lines appended to one file, a batch resolving only after write +
// fdatasync, so an acknowledged message is on disk (what Telegraf's file output is to its
// users, for debugging and archiving, with sluice's guarantee). A failed write or fsync is
// fatal, as for the audit log: the page cache may have dropped the data and a retry could
// falsely succeed. A crash may leave a torn last line (never acknowledged): the file is
// reopened for append and a torn tail is ended with a newline, so every line stays parseable
// except that one.
import { type FileHandle, mkdir, open } from 'node:fs/promises';
import { dirname } from 'node:path';
import { writeFully } from '../../write-fully.ts';
import { allDurable, type Sink, SinkError, type WriteResult } from '../sink.ts';

export class FileSink implements Sink<string> {
  readonly name: string;
  readonly path: string;
  private handle: FileHandle | undefined;
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
    } catch (err) {
      this.fatal = new Error(`write or fsync of ${this.path} failed: ${(err as Error).message}; stopping (never retried)`);
      throw new SinkError(this.name, this.fatal.message, { cause: err, retriable: false });
    }
    return allDurable;
  }

  problems(): readonly string[] {
    return this.fatal ? [`${this.name}: failed (stopping): ${this.fatal.message}`] : [];
  }

  async close(): Promise<void> {
    await this.handle?.close();
    this.handle = undefined;
  }
}
