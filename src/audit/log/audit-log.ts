// The append-only audit log writer. append() resolves only once the record is on disk
// (fdatasync), so the caller may then send PUBREC. Records arriving while a sync runs share the
// next one (group commit). Segments rotate by size and age; files are only ever appended to.
// A failed write or fsync is fatal and never retried (group-commit.ts): the log refuses all
// further appends and the process must stop. With a signing key, it keeps the Merkle tree over
// its records (merkle.ts) for its checkpoints to sign.

import type { KeyObject } from 'node:crypto';
import { closeSync, fsyncSync, ftruncateSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { join } from 'node:path';
import { monotonicMs } from '../../clock.ts';
import { writeFully } from '../../write-fully.ts';
import {
  type CheckpointRecord,
  type CommandRecord,
  encodeFrame,
  genesis,
  type NewCommand,
  readFrames,
  segmentFiles,
  segmentMagic,
  segmentName,
  sha256Hex,
  signCheckpoint,
} from './format.ts';
import { AuditFatalError, GroupCommit } from './group-commit.ts';
import { leafHash, MerkleFrontier } from './merkle.ts';
import { lockDir, unlockDir } from './writer-lock.ts';

export interface AuditLogOptions {
  readonly segmentBytes?: number;
  readonly segmentMs?: number;
  readonly signing?: { readonly privateKey: KeyObject; readonly publicKey: KeyObject; readonly every: number; readonly everyMs: number };
  /** Told once, when the log turns fatal; the owner must stop the process. */
  readonly onFatal?: (err: Error) => void;
  /** Told about a torn tail cut at open (a record whose fsync never completed, so never acknowledged). */
  readonly onRepair?: (segment: string, bytes: number) => void;
  /** Told when a segment is started, and when a checkpoint is durable (its anchors are published from here). */
  readonly onSegment?: (segment: string) => void;
  readonly onCheckpoint?: (checkpoint: CheckpointRecord) => void;
  /** Testing only: added before each fsync, to slow the log on purpose. */
  readonly syncDelayMs?: number;
}

export { AuditFatalError };

export class AuditLog {
  private readonly dir: string;
  private readonly options: AuditLogOptions;
  private handle!: FileHandle;
  private segment = '';
  private segmentSize = 0;
  private segmentOpenedAt = 0;
  private seq = 0;
  private prev = genesis;
  private readonly commits: GroupCommit<NewCommand, number>;
  private sinceCheckpoint = 0;
  /** The tree over every record so far (with a signing key only: checkpoints sign its head). */
  private tree: MerkleFrontier | undefined;
  private lastCheckpointAt = monotonicMs();
  private checkpointTimer: NodeJS.Timeout | undefined;
  /** Observed durations of each data sync, for the fsync latency histogram. */
  onSync?: (seconds: number, records: number, bytes: number) => void;

  private constructor(dir: string, options: AuditLogOptions) {
    this.dir = dir;
    this.options = options;
    this.commits = new GroupCommit((batch) => this.commit(batch), options.onFatal);
  }

  static async open(dir: string, options: AuditLogOptions = {}): Promise<AuditLog> {
    mkdirSync(dir, { recursive: true });
    lockDir(dir);
    const log = new AuditLog(dir, options);
    await log.recover();
    const s = options.signing;
    if (s) {
      // records that came and then silence: their checkpoint is due after everyMs all the same
      log.checkpointTimer = setInterval(
        () => {
          if (log.sinceCheckpoint > 0 && monotonicMs() - log.lastCheckpointAt >= s.everyMs) log.commits.kick();
        },
        Math.max(100, Math.min(s.everyMs, 1000)),
      );
      log.checkpointTimer.unref();
    }
    return log;
  }

  get lastSeq(): number {
    return this.seq;
  }

  get head(): string {
    return this.prev;
  }

  /** Resolves with the record's sequence number once it is durable. */
  append(record: NewCommand): Promise<number> {
    return this.commits.submit(record);
  }

  async close(): Promise<void> {
    clearInterval(this.checkpointTimer);
    await this.commits.idle();
    await this.handle.close();
    unlockDir(this.dir);
  }

  /**
   * One group commit: frames for the batch (and a checkpoint when due), written and synced.
   * `seal`: only the checkpoint that closes a segment (a sealed segment ends signed, so an
   * archive of sealed segments verifies to its end).
   */
  private async commit(batch: readonly NewCommand[], seal = false): Promise<number[]> {
    // rotate before writing, not after: a failed rotation must not un-acknowledge a durable batch
    if (
      !seal &&
      this.segmentSize > segmentMagic.length &&
      (this.segmentSize >= (this.options.segmentBytes ?? 64 * 1024 * 1024) || monotonicMs() - this.segmentOpenedAt >= (this.options.segmentMs ?? 3_600_000))
    ) {
      if (this.options.signing && this.sinceCheckpoint > 0) await this.commit([], true);
      await this.rotate();
    }
    const frames: Buffer[] = [];
    let seq = this.seq;
    let prev = this.prev;
    const tree = this.tree;
    const add = (body: Buffer) => {
      frames.push(encodeFrame(body));
      prev = sha256Hex(body);
      tree?.append(leafHash(body)); // a failed commit is fatal: the tree is never used again
    };
    for (const record of batch) {
      seq++;
      add(Buffer.from(JSON.stringify({ v: 1, type: 'command', seq, prev, ...record } satisfies CommandRecord)));
    }
    const s = this.options.signing;
    let checkpoint: CheckpointRecord | undefined;
    this.sinceCheckpoint += batch.length;
    if (s && this.sinceCheckpoint > 0 && (seal || this.sinceCheckpoint >= s.every || monotonicMs() - this.lastCheckpointAt >= s.everyMs)) {
      seq++;
      const head = tree && { size: tree.size, head: tree.head().toString('hex'), frontier: tree.toHex() };
      checkpoint = signCheckpoint(seq, prev, head, s.privateKey, s.publicKey);
      add(Buffer.from(JSON.stringify(checkpoint)));
      this.sinceCheckpoint = 0;
      this.lastCheckpointAt = monotonicMs();
    }
    if (frames.length === 0) return [];
    const data = Buffer.concat(frames);
    const started = process.hrtime.bigint();
    try {
      await writeFully(this.handle, data);
      if (this.options.syncDelayMs) await new Promise((r) => setTimeout(r, this.options.syncDelayMs));
      await this.handle.datasync();
    } catch (err) {
      throw new AuditFatalError(`audit log write or fsync failed in ${this.segment}: ${(err as Error).message}; stopping (never retried)`, { cause: err });
    }
    this.onSync?.(Number(process.hrtime.bigint() - started) / 1e9, batch.length, data.length);
    this.seq = seq;
    this.prev = prev;
    this.segmentSize += data.length;
    const first = seq - frames.length + 1;
    if (checkpoint) this.options.onCheckpoint?.(checkpoint);
    return batch.map((_, i) => first + i);
  }

  private async rotate(): Promise<void> {
    await this.handle.close();
    await this.openSegment(this.seq + 1);
  }

  private async openSegment(firstSeq: number): Promise<void> {
    this.segment = segmentName(firstSeq);
    this.handle = await open(join(this.dir, this.segment), 'a');
    const size = (await this.handle.stat()).size;
    if (size === 0) {
      await writeFully(this.handle, segmentMagic);
      await this.handle.sync();
      syncDir(this.dir); // the new file's name is durable too
    } else if (size !== segmentMagic.length) {
      // recovery found no record past this segment's first number, so it can only hold its header
      throw new AuditFatalError(`${this.segment} should be empty but holds ${size} bytes: run \`sluice audit verify\``);
    }
    this.segmentSize = segmentMagic.length;
    this.segmentOpenedAt = monotonicMs();
    this.options.onSegment?.(this.segment);
  }

  /** Finds the last record (seq, hash) and cuts a torn last frame left by a crash. */
  private async recover(): Promise<void> {
    const files = segmentFiles(this.dir);
    for (let i = files.length - 1; i >= 0; i--) {
      const name = files[i] as string;
      const { lastSeq, lastHash, goodBytes, size } = scanSegment(readFileSync(join(this.dir, name)));
      if (i === files.length - 1 && goodBytes < size) {
        const fd = openSync(join(this.dir, name), 'r+');
        try {
          ftruncateSync(fd, goodBytes);
          fsyncSync(fd);
        } finally {
          closeSync(fd);
        }
        this.options.onRepair?.(name, size - goodBytes);
      }
      if (lastSeq > 0) {
        this.seq = lastSeq;
        this.prev = lastHash;
        break;
      }
    }
    if (this.options.signing) this.tree = rebuildTree(this.dir, files, this.seq);
    // always start a new segment: an existing file is never written again after a restart
    await this.openSegment(this.seq + 1);
  }
}

/**
 * The tree over the `records` records of a log, from its last checkpoint that stores the tree's
 * frontier and the records after it; from the first record when none does (a log written
 * without a key, or before trees).
 */
function rebuildTree(dir: string, files: readonly string[], records: number): MerkleFrontier {
  const bodiesOf = (name: string) => [...readFrames(readFileSync(join(dir, name)), segmentMagic.length)].map((f) => f.body);
  let tree = new MerkleFrontier();
  let from = { file: 0, frame: 0 };
  search: for (let i = files.length - 1; i >= 0; i--) {
    const bodies = bodiesOf(files[i] as string);
    for (let j = bodies.length - 1; j >= 0; j--) {
      const body = bodies[j] as Buffer;
      if (!body.includes('"type":"checkpoint"')) continue; // most records: not parsed
      const record = JSON.parse(body.toString()) as CheckpointRecord | CommandRecord;
      if (record.type === 'checkpoint' && record.frontier !== undefined && record.treeSize !== undefined) {
        tree = MerkleFrontier.fromHex(record.treeSize, record.frontier);
        from = { file: i, frame: j };
        break search;
      }
    }
  }
  for (let i = from.file; i < files.length; i++) {
    const bodies = bodiesOf(files[i] as string);
    for (let j = i === from.file ? from.frame : 0; j < bodies.length; j++) tree.append(leafHash(bodies[j] as Buffer));
  }
  if (tree.size !== records) {
    throw new AuditFatalError(`the audit log's Merkle tree has ${tree.size} records where the log has ${records}: run \`sluice audit verify\``);
  }
  return tree;
}

/**
 * The last whole frame of a segment (CRC-checked); the chain itself is verify's job. Only a
 * torn tail may be cut: an incomplete last frame, or a bad last frame that ends exactly at the
 * end of the file (its write never completed). A bad frame with data after it is damage or
 * tampering: refuse, so the evidence stays.
 */
function scanSegment(bytes: Buffer): { lastSeq: number; lastHash: string; goodBytes: number; size: number } {
  const offset = Math.min(segmentMagic.length, bytes.length);
  let lastSeq = 0;
  let lastHash = genesis;
  if (!bytes.subarray(0, offset).equals(segmentMagic.subarray(0, offset))) {
    throw new AuditFatalError('an audit segment has a bad header: run `sluice audit verify`');
  }
  if (offset < segmentMagic.length) return { lastSeq, lastHash, goodBytes: 0, size: bytes.length };
  const frames = readFrames(bytes, offset);
  for (let next = frames.next(); ; next = frames.next()) {
    if (next.done) {
      const stopped = next.value;
      // a bad frame that ends exactly at the end of the file is torn (its write never completed)
      if (stopped.stop === 'crc' && stopped.end !== bytes.length) {
        throw new AuditFatalError(
          `an audit frame at offset ${stopped.offset} is damaged and more records follow it: run \`sluice audit verify\`; sluice will not write to this log`,
        );
      }
      return { lastSeq, lastHash, goodBytes: stopped.offset, size: bytes.length };
    }
    lastSeq = (JSON.parse(next.value.body.toString()) as { seq: number }).seq;
    lastHash = sha256Hex(next.value.body);
  }
}

function syncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
