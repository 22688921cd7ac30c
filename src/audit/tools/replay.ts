// Replays commands from an audit log, or from several workers' logs merged in receive order
// (merge.ts), checking them as it reads: every log is verified first and tampered input is
// refused (unless forced); then the records in range go, in order, to a ReplayTarget (the CLI's:
// JSON lines, a Kafka topic, an MQTT broker under a prefix) with their payload bytes and
// properties as recorded.
import type { KeyObject } from 'node:crypto';
import { compilePattern, PatternTrie, validateFilter } from '../../mapping/topic-pattern.ts';
import type { CommandRecord } from '../log/format.ts';
import { CrossWorkerCheck, type CrossWorkerFinding, mergeAuditLogs } from './merge.ts';
import { type Problem, type VerifyResult, verifyAuditLog } from './verify.ts';

export type Bound = { readonly seq: number } | { readonly time: number };

export interface ReplaySelection {
  readonly from?: Bound | undefined;
  readonly to?: Bound | undefined;
  /** An MQTT filter the record's topic must match. */
  readonly topic?: string | undefined;
}

/** Where replayed commands go; `send` may batch, `flush` makes everything sent durable. */
export interface ReplayTarget {
  send(record: CommandRecord, body: Buffer): Promise<void>;
  flush(): Promise<void>;
  close(): Promise<void>;
}

export interface ReplayResult {
  readonly replayed: number;
  readonly skipped: number;
  /** The verification of the log (of several: the first that failed, else the first). */
  readonly verify: VerifyResult;
  /** With several logs: commands recorded in two of them. */
  readonly crossWorker: readonly CrossWorkerFinding[];
  /** The problem read past (with force). */
  readonly forcedPast?: Problem | undefined;
}

export class ReplayRefusedError extends Error {
  override readonly name = 'ReplayRefusedError';
  readonly verify: VerifyResult;
  /** `dir`: which log, when several are replayed. */
  constructor(verify: VerifyResult, dir?: string) {
    const p = verify.problem as Problem;
    super(
      `refusing to replay: the log ${dir === undefined ? '' : `${dir} `}fails verification (${p.kind} at ${p.segment} offset ${p.offset}, seq ${p.seq}: ${p.message}); --force replays what can be read`,
    );
    this.verify = verify;
  }
}

/** "123" is a sequence number; anything else must parse as a time (ISO-8601). */
export function parseBound(text: string, what: string): Bound {
  if (/^\d+$/.test(text)) return { seq: Number(text) };
  const time = Date.parse(text);
  if (Number.isNaN(time)) throw new Error(`${what} takes a sequence number or an ISO-8601 time, got "${text}"`);
  return { time };
}

/** Seconds apart within which the same command in two logs is reported as recorded twice. */
export const crossWorkerWindowMs = 60_000;

export async function replay(
  dirs: string | readonly string[],
  target: ReplayTarget,
  options: ReplaySelection & {
    readonly publicKey?: KeyObject | undefined;
    readonly force?: boolean;
    /** How to name each log in a refusal (an archive's s3:// address rather than its local copy). */
    readonly names?: readonly string[];
    /** Commands read so far (replayed or outside the selection), replayed, and in the whole log. */
    readonly onProgress?: (read: number, replayed: number, commandsInLog: number) => void;
  },
): Promise<ReplayResult> {
  const logs = typeof dirs === 'string' ? [dirs] : dirs;
  const worst = (results: readonly VerifyResult[]) => results.find((r) => r.problem) ?? (results[0] as VerifyResult);
  const all = logs.map((dir) => verifyAuditLog(dir, { publicKey: options.publicKey }));
  const checked = worst(all);
  const which = (r: VerifyResult) => (logs.length > 1 ? (options.names ?? logs)[all.indexOf(r)] : undefined);
  if (checked.problem && !options.force) throw new ReplayRefusedError(checked, which(checked));
  const commandsInLogs = all.reduce((n, r) => n + r.commands, 0);
  let topicFilter: PatternTrie | undefined;
  if (options.topic !== undefined) {
    validateFilter(options.topic);
    (topicFilter = new PatternTrie()).add(compilePattern(options.topic));
  }
  const within = (r: CommandRecord) =>
    inside(r, options.from, 'from') && inside(r, options.to, 'to') && (topicFilter === undefined || topicFilter.match(r.topic).length > 0);

  // Read again, verifying on the way (the log may have grown or changed since), and send.
  let replayed = 0;
  let skipped = 0;
  const reader = mergeAuditLogs(logs, { publicKey: options.publicKey, continuePastProblems: options.force === true });
  const cross = new CrossWorkerCheck(crossWorkerWindowMs);
  let verify: VerifyResult;
  for (;;) {
    const next = reader.next();
    if (next.done) {
      verify = worst(next.value);
      break;
    }
    const record = next.value.record;
    if (record.type !== 'command') continue;
    if (logs.length > 1) cross.add(next.value);
    if (!within(record)) skipped++;
    else {
      await target.send(record, next.value.body);
      replayed++;
    }
    options.onProgress?.(replayed + skipped, replayed, commandsInLogs);
  }
  // a problem that appeared since the first pass: what was sent is sent, and it is reported
  if (verify.problem && !options.force) throw new ReplayRefusedError(verify, logs.length > 1 ? 'one of the logs' : undefined);
  await target.flush();
  return { replayed, skipped, verify, crossWorker: cross.findings, forcedPast: verify.problem };
}

function inside(r: CommandRecord, bound: Bound | undefined, side: 'from' | 'to'): boolean {
  if (bound === undefined) return true;
  const value = 'seq' in bound ? r.seq : Date.parse(r.receivedAt);
  const limit = 'seq' in bound ? bound.seq : bound.time;
  return side === 'from' ? value >= limit : value <= limit;
}
