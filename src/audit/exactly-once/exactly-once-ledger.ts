// Which QoS 2 packet ids this worker has recorded in the audit log and the broker has not yet
// released (PUBREL), kept so that a redelivered PUBLISH is recognised and not recorded twice,
// also after a SIGKILL. The audit record itself (worker + packetId) is the durable "recorded"
// mark; this ledger's journal adds the durable "released" marks (written before PUBCOMP, so the
// broker cannot reuse an id we still hold) and "reset" marks (a CONNACK without our session
// voids every id). At open the journal is rebuilt from its last snapshot plus the audit records
// written since, then compacted into a new snapshot.
// A broker that crashes and restarts from an older save (Mosquitto's autosave) sends again, with
// DUP set, commands sluice recorded and released since that save. So released records stay in a
// bounded history (entries and age, both configurable), durable like the rest: a DUP PUBLISH
// whose packet id, topic and payload match one resolves to the first record.

import { createHash } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFully } from '../../write-fully.ts';
import { type AuditRecord, encodeFrame, readFrames, segmentFiles, segmentMagic } from '../log/format.ts';
import { AuditFatalError, GroupCommit } from '../log/group-commit.ts';
import { RecentMap } from './recent-map.ts';

/** What identifies a message's content: redelivery keeps the topic and payload. */
export function contentDigest(topic: string, payload: Uint8Array): string {
  return createHash('sha256').update(topic).update('\0').update(payload).digest('hex').slice(0, 32);
}

interface Entry {
  /** Undefined while the record is being written. */
  seq: number | undefined;
  /** The audit head when recording began: the record's seq will be above it. */
  readonly after: number;
  readonly digest: string;
  readonly recorded: Promise<number>;
  releasing?: Promise<void>;
}

/** [packetId, seq, digest, releasedAt (epoch ms)] */
type ReleasedTuple = readonly [number, number, string, number];

type JournalEntry =
  | {
      readonly t: 'snapshot';
      readonly through: number;
      readonly open: ReadonlyArray<readonly [number, number, string]>;
      readonly released?: readonly ReleasedTuple[];
    }
  | { readonly t: 'release'; readonly seq: number; readonly packetId: number; readonly digest?: string; readonly at?: number }
  | { readonly t: 'reset'; readonly through: number };

/** How long released records are remembered for a rolled-back broker's redelivery. */
export interface ReleasedHistoryOptions {
  readonly maxEntries: number;
  readonly maxAgeMs: number;
}

export const defaultReleasedHistory: ReleasedHistoryOptions = { maxEntries: 10_000, maxAgeMs: 3_600_000 };

export interface LedgerOptions {
  /** The audit log's last durable sequence number, now (records after a snapshot are read from the log). */
  readonly auditHead: () => number;
  /** Compact the journal after this many entries (default 10,000). */
  readonly compactEvery?: number;
  /** Released records kept for redeliveries after a broker rollback (defaultReleasedHistory). */
  readonly releasedHistory?: ReleasedHistoryOptions;
  /** The clock (tests). */
  readonly now?: () => number;
  readonly onFatal?: (err: Error) => void;
}

export class ExactlyOnceLedger {
  private readonly file: string;
  private readonly open = new Map<number, Entry>();
  /** Released records' seq by packet id and digest, oldest first. */
  private readonly released: RecentMap<number>;
  private readonly now: () => number;
  private handle!: FileHandle;
  private readonly commits: GroupCommit<JournalEntry, void>;
  private entries = 0;
  private resetDurable: Promise<void> | undefined;
  private readonly options: LedgerOptions;
  private readonly auditHead: () => number;

  private constructor(file: string, options: LedgerOptions) {
    this.file = file;
    this.options = options;
    this.auditHead = options.auditHead;
    this.now = options.now ?? Date.now;
    this.released = new RecentMap(options.releasedHistory ?? defaultReleasedHistory, this.now);
    this.commits = new GroupCommit((batch) => this.commit(batch), options.onFatal);
  }

  /** Opens (or creates) the ledger of `worker` in the audit directory `dir`. */
  static async open(dir: string, worker: string, options: LedgerOptions): Promise<ExactlyOnceLedger> {
    const ledgerDir = join(dir, 'exactly-once');
    mkdirSync(ledgerDir, { recursive: true });
    const ledger = new ExactlyOnceLedger(join(ledgerDir, `${encodeURIComponent(worker)}.ledger`), options);
    const recovered = recoverOpenIds(dir, worker, ledger.file);
    for (const [packetId, { seq, digest }] of recovered.open) {
      ledger.open.set(packetId, { seq, after: seq - 1, digest, recorded: Promise.resolve(seq) });
    }
    for (const [packetId, seq, digest, at] of recovered.released) ledger.released.set(`${packetId}:${digest}`, seq, at);
    ledger.released.expire();
    ledger.writeSnapshot(options.auditHead());
    ledger.handle = await open(ledger.file, 'a');
    return ledger;
  }

  /** Packet ids recorded (or being recorded) and not yet released. */
  get size(): number {
    return this.open.size;
  }

  /** Released records remembered for a rolled-back broker's redelivery. */
  get releasedSize(): number {
    return this.released.size;
  }

  /**
   * A DUP PUBLISH matching a record already released: a broker restarted from an older save
   * sends it again. Its record's sequence number; undefined: not one we released (recently).
   */
  releasedRecord(packetId: number, digest: string): number | undefined {
    return this.released.get(`${packetId}:${digest}`);
  }

  /**
   * A PUBLISH with this packet id and content is a redelivery of a message already recorded:
   * its sequence number (once durable). Undefined: a new message.
   */
  recorded(packetId: number, digest: string): Promise<number> | undefined {
    const entry = this.open.get(packetId);
    return entry && entry.digest === digest ? entry.recorded : undefined;
  }

  /**
   * Whether an id is held for a message of other content. The broker does not reuse an id
   * before PUBCOMP, so this means broker state we did not see; the new message is recorded
   * (never dropped on a guess) and the caller counts it.
   */
  heldForOther(packetId: number, digest: string): boolean {
    const entry = this.open.get(packetId);
    return entry !== undefined && entry.digest !== digest;
  }

  /** A new message with this packet id is being recorded; `recorded` resolves with its seq. */
  recording(packetId: number, digest: string, recorded: Promise<number>): Promise<number> {
    const entry: Entry = { seq: undefined, after: this.auditHead(), digest, recorded };
    this.open.set(packetId, entry);
    // after a reset, nothing may be acknowledged before the reset is durable (see gate())
    const reset = this.resetDurable;
    const done = recorded.then(
      (seq) => {
        entry.seq = seq;
        return seq;
      },
      (err: unknown) => {
        if (this.open.get(packetId) === entry) this.open.delete(packetId);
        throw err;
      },
    );
    return reset ? Promise.all([done, reset]).then(([seq]) => seq) : done;
  }

  /** PUBREL: resolves once the release is durable (then PUBCOMP may go). */
  release(packetId: number): Promise<void> {
    const entry = this.open.get(packetId);
    if (!entry) return Promise.resolve(); // released before (a resent PUBREL), or never ours
    if (entry.releasing) return entry.releasing;
    // the commit that makes it durable also drops the id from the open set (see commit())
    entry.releasing = entry.recorded.then((seq) => this.append({ t: 'release', seq, packetId, digest: entry.digest, at: this.now() }));
    return entry.releasing;
  }

  /** The broker has no session for us: every id it had in flight is void. */
  sessionLost(): void {
    if (this.open.size === 0 && this.released.size === 0 && !this.resetDurable) return;
    // records still being written belong to the lost session too: the reset covers them once
    // they are durable (the gate keeps new ones from starting meanwhile)
    const older = [...this.open.values()].map((e) => e.recorded.catch(() => 0));
    this.open.clear();
    // a broker with no session for us has nothing of ours to send again
    this.released.clear();
    const reset = Promise.all([...older, this.resetDurable]).then(() => this.append({ t: 'reset', through: this.auditHead() }));
    this.resetDurable = reset;
    void reset.then(
      () => {
        if (this.resetDurable === reset) this.resetDurable = undefined;
      },
      () => {},
    );
  }

  /** A promise while a reset is not yet durable: the source takes no message meanwhile. */
  gate(): Promise<void> | undefined {
    return this.resetDurable;
  }

  async close(): Promise<void> {
    await this.commits.idle();
    await this.handle.close();
  }

  private append(entry: JournalEntry): Promise<void> {
    return this.commits.submit(entry);
  }

  /** One group commit of journal entries (fatal on failure, never retried: group-commit.ts). */
  private async commit(batch: readonly JournalEntry[]): Promise<undefined[]> {
    const data = Buffer.concat(batch.map((entry) => encodeFrame(Buffer.from(JSON.stringify(entry)))));
    try {
      await writeFully(this.handle, data);
      await this.handle.datasync();
    } catch (err) {
      throw new AuditFatalError(`exactly-once ledger write or fsync failed in ${this.file}: ${(err as Error).message}; stopping (never retried)`, {
        cause: err,
      });
    }
    // durable now: released ids leave the open set here, synchronously, so that a compaction
    // right below (or any later snapshot) cannot count them as open
    for (const e of batch) {
      if (e.t !== 'release') continue;
      if (this.open.get(e.packetId)?.seq === e.seq) this.open.delete(e.packetId);
      if (e.digest !== undefined) this.released.set(`${e.packetId}:${e.digest}`, e.seq, e.at ?? this.now());
    }
    this.released.expire();
    this.entries += batch.length;
    if (this.entries >= (this.options.compactEvery ?? 10_000)) await this.compact();
    return batch.map(() => undefined);
  }

  /**
   * A fresh journal holding one snapshot: the ids open now whose records are durable up to the
   * audit head. Ids still being recorded get a seq above the head, so the next recovery finds
   * them in the audit log.
   */
  private async compact(): Promise<void> {
    await this.handle.close();
    // an entry whose seq is not known here may already be durable: keep it above `through`
    let through = this.auditHead();
    for (const e of this.open.values()) if (e.seq === undefined) through = Math.min(through, e.after);
    this.writeSnapshot(through);
    this.handle = await open(this.file, 'a');
  }

  private writeSnapshot(through: number): void {
    const open: Array<readonly [number, number, string]> = [];
    for (const [packetId, e] of this.open) if (e.seq !== undefined && e.seq <= through) open.push([packetId, e.seq, e.digest]);
    const released: ReleasedTuple[] = [];
    for (const [key, seq, at] of this.released) {
      const colon = key.indexOf(':');
      released.push([Number(key.slice(0, colon)), seq, key.slice(colon + 1), at]);
    }
    const tmp = `${this.file}.tmp`;
    const fd = openSync(tmp, 'w');
    try {
      // writeFileSync loops until all is written (a single writeSync may stop short)
      writeFileSync(fd, encodeFrame(Buffer.from(JSON.stringify({ t: 'snapshot', through, open, released } satisfies JournalEntry))));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.file);
    const dirFd = openSync(join(this.file, '..'), 'r');
    try {
      fsyncSync(dirFd);
    } finally {
      closeSync(dirFd);
    }
    this.entries = 0;
  }
}

/**
 * The ids recorded and not released: the journal's last snapshot, plus this worker's QoS 2
 * records after it in the audit log, less the released and reset ones. An id recorded twice
 * (the broker reused it after a session we lost) keeps its latest record.
 */
function recoverOpenIds(dir: string, worker: string, file: string): { open: Map<number, { seq: number; digest: string }>; released: ReleasedTuple[] } {
  let through = 0;
  const bySeq = new Map<number, { packetId: number; digest: string }>();
  const released = new Set<number>();
  // the released history, in release order; a reset voids what came before it
  let history: ReleasedTuple[] = [];
  let resetThrough = 0;
  if (existsSync(file)) {
    for (const e of readJournal(readFileSync(file))) {
      if (e.t === 'snapshot') {
        through = e.through;
        bySeq.clear();
        released.clear();
        resetThrough = 0;
        history = [...(e.released ?? [])];
        for (const [packetId, seq, digest] of e.open) bySeq.set(seq, { packetId, digest });
      } else if (e.t === 'release') {
        released.add(e.seq);
        if (e.digest !== undefined) history.push([e.packetId, e.seq, e.digest, e.at ?? 0]);
      } else {
        resetThrough = Math.max(resetThrough, e.through);
        history = [];
      }
    }
  }
  readCommandsAfter(dir, through, (record) => {
    if (record.type !== 'command' || record.worker !== worker || record.qos !== 2 || record.packetId === undefined) return;
    bySeq.set(record.seq, { packetId: record.packetId, digest: contentDigest(record.topic, Buffer.from(record.payload, 'base64')) });
  });
  const open = new Map<number, { seq: number; digest: string }>();
  for (const seq of [...bySeq.keys()].sort((a, b) => a - b)) {
    if (released.has(seq) || seq <= resetThrough) continue;
    const { packetId, digest } = bySeq.get(seq) as { packetId: number; digest: string };
    open.set(packetId, { seq, digest });
  }
  return { open, released: history };
}

/** Journal entries in order; a torn or damaged tail ends it (its fsync never completed). */
function readJournal(bytes: Buffer): JournalEntry[] {
  return [...readFrames(bytes, 0)].map((f) => JSON.parse(f.body.toString()) as JournalEntry);
}

/** Every audit record with seq > `after`, in order, from the segment that holds after + 1 on. */
function readCommandsAfter(dir: string, after: number, onRecord: (record: AuditRecord) => void): void {
  const files = segmentFiles(dir);
  let start = 0;
  for (let i = 0; i < files.length; i++) if (Number((files[i] as string).slice(0, 20)) <= after + 1) start = i;
  for (const name of files.slice(start)) {
    // the writer's recovery vetted the log before the ledger opens: reading stops only at its end
    for (const { body } of readFrames(readFileSync(join(dir, name)), segmentMagic.length)) {
      const record = JSON.parse(body.toString()) as AuditRecord;
      if (record.seq > after) onRecord(record);
    }
  }
}
