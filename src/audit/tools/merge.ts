// One view across the workers of a share group: each worker keeps its own log, and these read
// several as one, in receive order (each log's own order kept), every record with its worker and
// seq. What only the view across them can show is reported: the same command recorded by two
// workers (the broker handed a retry to another member of the group), and an idempotency key
// recorded in two logs.
import { createHash, type KeyObject } from 'node:crypto';
import type { CommandRecord } from '../log/format.ts';
import { type Frame, readAuditLog, type VerifyResult } from './verify.ts';

export interface MergedFrame extends Frame {
  /** The log (its directory) the record is from. */
  readonly dir: string;
}

/** A command recorded in two logs. */
export interface CrossWorkerFinding {
  readonly kind: 'same-command' | 'same-idempotency-key';
  readonly first: { readonly dir: string; readonly worker: string | undefined; readonly seq: number; readonly receivedAt: string };
  readonly second: { readonly dir: string; readonly worker: string | undefined; readonly seq: number; readonly receivedAt: string };
}

/**
 * The records of several logs merged by receive time (a log's records keep their order even if
 * its clock stepped back). Each log is verified as it is read; the results come back per log.
 */
export function* mergeAuditLogs(
  dirs: readonly string[],
  options: { readonly publicKey?: KeyObject | undefined; readonly continuePastProblems?: boolean } = {},
): Generator<MergedFrame, VerifyResult[], void> {
  const readers = dirs.map((dir) => ({
    dir,
    reader: readAuditLog(dir, options),
    head: undefined as Frame | undefined,
    /** The head's receive time, parsed once. */
    at: 0,
    result: undefined as VerifyResult | undefined,
  }));
  const advance = (r: (typeof readers)[number]) => {
    const next = r.reader.next();
    if (next.done) {
      r.head = undefined;
      r.result = next.value;
    } else {
      r.head = next.value;
      r.at = timeOf(next.value);
    }
  };
  for (const r of readers) advance(r);
  for (;;) {
    let pick: (typeof readers)[number] | undefined;
    for (const r of readers) {
      if (r.head === undefined) continue;
      if (pick === undefined || r.at < pick.at) pick = r;
    }
    if (pick === undefined) return readers.map((r) => r.result as VerifyResult);
    yield { ...(pick.head as Frame), dir: pick.dir };
    advance(pick);
  }
}

/** A record's receive time; a checkpoint's `at`. */
function timeOf(frame: Frame): number {
  const r = frame.record as { receivedAt?: string; at?: string };
  return Date.parse(r.receivedAt ?? r.at ?? '') || 0;
}

/**
 * Watches merged records for commands recorded in two logs: the same content (topic, payload,
 * correlation data) within `windowMs` of each other, and the same idempotency key at any time.
 */
export class CrossWorkerCheck {
  readonly findings: CrossWorkerFinding[] = [];
  private readonly windowMs: number;
  /** Content digest -> where it was recorded, the oldest first (dropped past the window). */
  private readonly recent = new Map<string, CrossWorkerFinding['first']>();
  private readonly keys = new Map<string, CrossWorkerFinding['first']>();

  constructor(windowMs: number) {
    this.windowMs = windowMs;
  }

  add(frame: MergedFrame): void {
    if (frame.record.type !== 'command') return;
    const r = frame.record as CommandRecord;
    const at = Date.parse(r.receivedAt);
    const here = { dir: frame.dir, worker: r.worker, seq: r.seq, receivedAt: r.receivedAt };
    for (const [digest, seen] of this.recent) {
      if (Date.parse(seen.receivedAt) >= at - this.windowMs) break;
      this.recent.delete(digest);
    }
    const digest = createHash('sha256')
      .update(`${r.topic}\n${r.properties.correlationData ?? ''}\n`)
      .update(r.payload)
      .digest('hex');
    const earlier = this.recent.get(digest);
    if (earlier !== undefined && earlier.dir !== frame.dir) this.findings.push({ kind: 'same-command', first: earlier, second: here });
    this.recent.delete(digest);
    this.recent.set(digest, here);
    if (r.idempotencyKey !== undefined) {
      const seen = this.keys.get(r.idempotencyKey);
      if (seen !== undefined && seen.dir !== frame.dir) this.findings.push({ kind: 'same-idempotency-key', first: seen, second: here });
      else if (seen === undefined) this.keys.set(r.idempotencyKey, here);
    }
  }
}

/** One line for a finding. */
export function describeFinding(f: CrossWorkerFinding): string {
  const where = (x: CrossWorkerFinding['first']) => `${x.worker ?? x.dir} seq ${x.seq} (${x.receivedAt})`;
  return f.kind === 'same-command'
    ? `the same command recorded by two workers: ${where(f.first)} and ${where(f.second)} (the broker handed it to another member)`
    : `an idempotency key recorded in two logs: ${where(f.first)} and ${where(f.second)}`;
}
