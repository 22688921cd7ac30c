// Reads an audit-log directory and checks everything a tamper or a crash can break: each
// frame's length and CRC-32C, the SHA-256 chain, sequence continuity across segments, and
// (with a public key) the signed checkpoints, and the Merkle tree head each checkpoint carries. Reports the first bad place: segment, offset,
// sequence number, what is wrong. A torn last frame (a crash mid-write) is told apart from
// tampering, and repairTail() cuts exactly that frame and nothing else.

import type { KeyObject } from 'node:crypto';
import { closeSync, fsyncSync, ftruncateSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { crc32c } from '../log/crc32c.ts';
import {
  type AuditRecord,
  type CheckpointRecord,
  checkpointValid,
  frameHeaderBytes,
  genesis,
  maxBodyBytes,
  segmentFiles,
  segmentMagic,
  sha256Hex,
} from '../log/format.ts';
import { leafHash, MerkleFrontier } from '../log/merkle.ts';

export type ProblemKind = 'torn-tail' | 'corrupt' | 'missing' | 'inserted' | 'reordered' | 'chain' | 'signature' | 'no-log' | 'truncated' | 'fork';

/** Exit codes of `sluice audit verify`, one per kind of finding. */
export const exitCodes: Record<ProblemKind | 'ok', number> = {
  ok: 0,
  'torn-tail': 3,
  corrupt: 4,
  missing: 5,
  inserted: 5,
  reordered: 5,
  chain: 5,
  signature: 6,
  'no-log': 7,
  truncated: 8,
  fork: 9,
};

export interface Problem {
  readonly kind: ProblemKind;
  readonly segment: string;
  readonly offset: number;
  /** The sequence number expected at that place. */
  readonly seq: number;
  readonly message: string;
}

export interface VerifyResult {
  readonly ok: boolean;
  readonly segments: number;
  readonly records: number;
  readonly commands: number;
  readonly checkpoints: number;
  readonly lastSeq: number;
  readonly head: string;
  /** Records after the last valid checkpoint (only with a public key). */
  readonly unsignedTail?: number;
  readonly problem?: Problem;
}

export interface Frame {
  readonly segment: string;
  readonly offset: number;
  readonly body: Buffer;
  readonly record: AuditRecord;
  readonly hash: string;
}

export interface VerifyOptions {
  readonly publicKey?: KeyObject | undefined;
  /** Called for each good frame, in order (replay reads through this). */
  readonly onFrame?: (frame: Frame) => void;
  /**
   * Read on past a problem where the framing still holds (a bad CRC is skipped, a broken chain
   * or sequence is resynchronised on the record found), calling onFrame for every readable
   * record: `replay --force`. The first problem is still reported.
   */
  readonly continuePastProblems?: boolean;
}

export function verifyAuditLog(dir: string, options: VerifyOptions = {}): VerifyResult {
  const reader = readAuditLog(dir, options);
  for (let next = reader.next(); ; next = reader.next()) {
    if (next.done) return next.value;
    options.onFrame?.(next.value);
  }
}

/**
 * The verifier as a pull: yields each good frame in order (one segment in memory at a time),
 * returns the result. Replay awaits its target between frames.
 */
export function* readAuditLog(dir: string, options: Omit<VerifyOptions, 'onFrame'> = {}): Generator<Frame, VerifyResult, void> {
  const files = segmentFiles(dir);
  let expectSeq = 1;
  let prev = genesis;
  let records = 0;
  let commands = 0;
  let checkpoints = 0;
  let lastSignedSeq = 0;
  const tree = new MerkleFrontier();
  let firstProblem: Problem | undefined;
  const result = (problem: Problem | undefined = firstProblem): VerifyResult => ({
    ok: problem === undefined,
    segments: files.length,
    records,
    commands,
    checkpoints,
    lastSeq: expectSeq - 1,
    head: prev,
    ...(options.publicKey ? { unsignedTail: expectSeq - 1 - lastSignedSeq } : {}),
    ...(problem ? { problem } : {}),
  });

  for (const [fileIndex, segment] of files.entries()) {
    const bytes = readFileSync(join(dir, segment));
    const last = fileIndex === files.length - 1;
    const problem = (kind: ProblemKind, offset: number, message: string) => result({ kind, segment, offset, seq: expectSeq, message });
    /** A problem after which the next frame can still be found: noted, and reading goes on when asked. */
    const recoverable = (kind: ProblemKind, offset: number, message: string): VerifyResult | undefined => {
      if (!options.continuePastProblems) return problem(kind, offset, message);
      firstProblem ??= { kind, segment, offset, seq: expectSeq, message };
      return undefined;
    };
    if (bytes.length < segmentMagic.length || !bytes.subarray(0, segmentMagic.length).equals(segmentMagic)) {
      if (last && bytes.length < segmentMagic.length && segmentMagic.subarray(0, bytes.length).equals(bytes)) {
        return problem('torn-tail', 0, 'the segment header was cut short by a crash');
      }
      return problem('corrupt', 0, 'not an audit segment (bad header)');
    }
    let offset = segmentMagic.length;
    while (offset < bytes.length) {
      const left = bytes.length - offset;
      if (left < frameHeaderBytes) {
        return last
          ? problem('torn-tail', offset, `the last frame is cut short (${left} of ${frameHeaderBytes} header bytes)`)
          : problem('corrupt', offset, 'a frame header is cut short inside the log');
      }
      const length = bytes.readUInt32BE(offset);
      const crc = bytes.readUInt32BE(offset + 4);
      if (length > maxBodyBytes) return problem('corrupt', offset, `frame length ${length} is impossible (a flipped byte?)`);
      if (frameHeaderBytes + length > left) {
        return last
          ? problem('torn-tail', offset, `the last frame is cut short (${left - frameHeaderBytes} of ${length} body bytes)`)
          : problem('corrupt', offset, 'a frame runs past the end of its segment');
      }
      const body = bytes.subarray(offset + frameHeaderBytes, offset + frameHeaderBytes + length);
      const next = offset + frameHeaderBytes + length;
      let record: AuditRecord | undefined;
      try {
        record = JSON.parse(body.toString('utf8')) as AuditRecord;
      } catch {
        record = undefined;
      }
      if (crc32c(body) !== crc || record === undefined) {
        const stop = recoverable(
          'corrupt',
          offset,
          record === undefined ? 'the frame body is not a record' : 'CRC-32C mismatch: the frame was altered or damaged',
        );
        if (stop) return stop;
        offset = next; // skipped: not trusted enough to replay
        continue;
      }
      if (record.seq !== expectSeq) {
        const kind = sequenceProblem(bytes, next, record.seq, expectSeq);
        const what =
          kind === 'missing'
            ? `record(s) ${expectSeq}..${record.seq - 1} are missing`
            : kind === 'inserted'
              ? `record ${record.seq} appears again (inserted)`
              : `found record ${record.seq} where ${expectSeq} belongs (reordered)`;
        const stop = recoverable(kind, offset, what);
        if (stop) return stop;
      } else if (record.prev !== prev) {
        const stop = recoverable('chain', offset, `record ${record.seq} does not follow from record ${record.seq - 1}: one of them was edited or forged`);
        if (stop) return stop;
      }
      if (record.type === 'checkpoint') {
        checkpoints++;
        const c = record as CheckpointRecord;
        if (c.treeHead !== undefined && (c.treeSize !== tree.size || c.treeHead !== tree.head().toString('hex'))) {
          const stop = recoverable(
            'chain',
            offset,
            `checkpoint ${record.seq}: its tree head (${c.treeSize} records) is not the Merkle tree of the ${tree.size} records before it: a record was edited or forged`,
          );
          if (stop) return stop;
        }
        if (c.frontier !== undefined && !frontierFolds(c)) {
          const stop = recoverable(
            'chain',
            offset,
            `checkpoint ${record.seq}: its frontier does not make its tree head (a writer restarted from it would go on with a wrong tree)`,
          );
          if (stop) return stop;
        }
        if (options.publicKey) {
          if (!checkpointValid(record as CheckpointRecord, options.publicKey)) {
            const stop = recoverable(
              'signature',
              offset,
              `checkpoint ${record.seq}: the signature does not match the chain head (the log before it was rewritten, or another key signed it)`,
            );
            if (stop) return stop;
          } else lastSignedSeq = record.seq;
        }
      } else {
        commands++;
      }
      const hash = sha256Hex(body);
      tree.append(leafHash(body));
      yield { segment, offset, body, record, hash };
      prev = hash;
      records++;
      expectSeq = record.seq + 1; // the same as +1 unless reading on past a problem
      offset = next;
    }
  }
  if (options.publicKey && checkpoints === 0 && records > 0) {
    return result({ kind: 'signature', segment: files.at(-1) ?? '', offset: 0, seq: expectSeq, message: 'no signed checkpoint in the log' });
  }
  return result();
}

/** Whether a checkpoint's stored frontier folds to the tree head it signs. */
function frontierFolds(c: CheckpointRecord): boolean {
  try {
    return (
      MerkleFrontier.fromHex(c.treeSize ?? -1, c.frontier ?? [])
        .head()
        .toString('hex') === c.treeHead
    );
  } catch {
    return false; // not the frontier of a tree of that size
  }
}

/** Tells a swap from a gap by the next frame's sequence number. */
function sequenceProblem(bytes: Buffer, nextOffset: number, found: number, expected: number): ProblemKind {
  if (found < expected) return found === expected - 1 ? 'inserted' : 'reordered';
  if (nextOffset + frameHeaderBytes <= bytes.length) {
    const length = bytes.readUInt32BE(nextOffset);
    if (nextOffset + frameHeaderBytes + length <= bytes.length) {
      try {
        const next = JSON.parse(bytes.subarray(nextOffset + frameHeaderBytes, nextOffset + frameHeaderBytes + length).toString()) as { seq?: number };
        if (next.seq === expected) return 'reordered';
      } catch {
        // not a record: fall through
      }
    }
  }
  return 'missing';
}

/** Cuts a torn last frame (and only that) off the last segment. Returns the bytes removed. */
export function repairTail(dir: string, problem: Problem): number {
  if (problem.kind !== 'torn-tail') throw new Error(`refusing to repair: ${problem.kind} is not a torn tail`);
  const file = join(dir, problem.segment);
  const size = readFileSync(file).length;
  const fd = openSync(file, 'r+');
  try {
    // a segment torn inside its header keeps nothing; else cut back to where the torn frame starts
    ftruncateSync(fd, problem.offset);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return size - problem.offset;
}
