// Proofs an auditor can check with the public key alone, without the log: that one record is
// in the tree a signed checkpoint covers (inclusion), and that a later checkpoint's tree extends
// an earlier one's, nothing before it changed (consistency). RFC 9162's algorithms over the
// tree merkle.ts keeps; docs/audit-log.md specifies the JSON.
import type { KeyObject } from 'node:crypto';
import { type CheckpointRecord, checkpointValid } from '../log/format.ts';
import { consistencyHolds, inclusionHolds, LeafHashes, leafHash } from '../log/merkle.ts';
import { readAuditLog, type VerifyResult } from './verify.ts';

/** A checkpoint as a proof carries it: what it signs, and the signature (no frontier). */
export type SignedTreeHead = Pick<CheckpointRecord, 'seq' | 'prev' | 'at' | 'keyId' | 'signature'> & { readonly treeSize: number; readonly treeHead: string };

export interface InclusionProof {
  readonly type: 'inclusion';
  readonly seq: number;
  /** The record's body exactly as stored, base64. */
  readonly record: string;
  /** Sibling hashes from the leaf up (hex), RFC 9162 §2.1.3. */
  readonly path: readonly string[];
  readonly checkpoint: SignedTreeHead;
}

export interface ConsistencyProof {
  readonly type: 'consistency';
  readonly first: SignedTreeHead;
  readonly second: SignedTreeHead;
  /** RFC 9162 §2.1.4 (hex). */
  readonly path: readonly string[];
}

export type AuditProof = InclusionProof | ConsistencyProof;

/** The log could not give the proof asked for: why, in words for the operator. */
export class ProofRefusedError extends Error {
  override readonly name = 'ProofRefusedError';
  readonly verify: VerifyResult | undefined;
  constructor(message: string, verify?: VerifyResult) {
    super(message);
    this.verify = verify;
  }
}

interface ReadLog {
  readonly leaves: LeafHashes;
  readonly checkpoints: Map<number, CheckpointRecord>;
  readonly bodies: Map<number, Buffer>;
}

/** Reads (and verifies) the whole log, keeping every leaf hash, every tree checkpoint and the bodies asked for. */
function readLog(dir: string, keep: ReadonlySet<number>, publicKey: KeyObject | undefined): ReadLog {
  const leaves = new LeafHashes();
  const checkpoints = new Map<number, CheckpointRecord>();
  const bodies = new Map<number, Buffer>();
  const reader = readAuditLog(dir, { publicKey });
  for (let next = reader.next(); ; next = reader.next()) {
    if (next.done) {
      const p = next.value.problem;
      if (p)
        throw new ProofRefusedError(
          `the log fails verification (${p.kind} at ${p.segment} offset ${p.offset}, seq ${p.seq}: ${p.message}): no proof from it`,
          next.value,
        );
      return { leaves, checkpoints, bodies };
    }
    const { record, body } = next.value;
    leaves.push(leafHash(body));
    if (keep.has(record.seq)) bodies.set(record.seq, Buffer.from(body));
    if (record.type === 'checkpoint' && (record as CheckpointRecord).treeHead !== undefined) checkpoints.set(record.seq, record as CheckpointRecord);
  }
}

function signedTreeHead(c: CheckpointRecord): SignedTreeHead {
  return { seq: c.seq, prev: c.prev, at: c.at, keyId: c.keyId, signature: c.signature, treeSize: c.treeSize as number, treeHead: c.treeHead as string };
}

/** The checkpoint to prove against: the one asked for, or the newest; it must carry a tree. */
function checkpointAt(log: ReadLog, seq: number | undefined, what: string): CheckpointRecord {
  if (seq === undefined) {
    const newest = [...log.checkpoints.values()].at(-1);
    if (newest === undefined)
      throw new ProofRefusedError('the log has no checkpoint with a tree head (written without audit.signing, or before trees): nothing to prove against');
    return newest;
  }
  const c = log.checkpoints.get(seq);
  if (c === undefined) throw new ProofRefusedError(`${what}: record ${seq} is not a checkpoint with a tree head`);
  return c;
}

/** Proves record `seq` in the tree of `checkpoint` (default: the newest checkpoint). */
export function proveInclusion(dir: string, seq: number, options: { checkpoint?: number; publicKey?: KeyObject | undefined } = {}): InclusionProof {
  const log = readLog(dir, new Set([seq]), options.publicKey);
  const body = log.bodies.get(seq);
  if (body === undefined) throw new ProofRefusedError(`record ${seq} is not in the log (it has ${log.leaves.size})`);
  const c = checkpointAt(log, options.checkpoint, '--checkpoint');
  if ((c.treeSize as number) < seq) {
    throw new ProofRefusedError(
      `record ${seq} came after checkpoint ${c.seq} (its tree covers records 1..${c.treeSize}): prove it against a later checkpoint, or wait for the next one (audit.signing.everyRecords / everyMs)`,
    );
  }
  const path = log.leaves.inclusionPath(seq - 1, c.treeSize as number).map((h) => h.toString('hex'));
  return { type: 'inclusion', seq, record: body.toString('base64'), path, checkpoint: signedTreeHead(c) };
}

/** Proves that checkpoint `second`'s tree extends checkpoint `first`'s. */
export function proveConsistency(dir: string, first: number, second: number, options: { publicKey?: KeyObject | undefined } = {}): ConsistencyProof {
  if (first >= second) throw new ProofRefusedError(`--consistency A B: A (${first}) must come before B (${second})`);
  const log = readLog(dir, new Set(), options.publicKey);
  const a = checkpointAt(log, first, 'A');
  const b = checkpointAt(log, second, 'B');
  const path = log.leaves.consistencyPath(a.treeSize as number, b.treeSize as number).map((h) => h.toString('hex'));
  return { type: 'consistency', first: signedTreeHead(a), second: signedTreeHead(b), path };
}

export type ProofCheck =
  | { readonly ok: true; readonly summary: string }
  | { readonly ok: false; readonly kind: 'signature' | 'proof' | 'format'; readonly message: string };

function signatureProblem(c: SignedTreeHead, publicKey: KeyObject): string | undefined {
  const record = { v: 1, type: 'checkpoint', ...c } as CheckpointRecord;
  return checkpointValid(record, publicKey) ? undefined : `checkpoint ${c.seq}: the signature does not match its tree head (altered, or another key signed it)`;
}

const hex32 = /^[0-9a-f]{64}$/;

function wellFormed(c: unknown): c is SignedTreeHead {
  const x = c as SignedTreeHead;
  return (
    typeof x === 'object' &&
    x !== null &&
    Number.isSafeInteger(x.seq) &&
    Number.isSafeInteger(x.treeSize) &&
    x.treeSize === x.seq - 1 &&
    typeof x.prev === 'string' &&
    hex32.test(x.prev) &&
    typeof x.treeHead === 'string' &&
    hex32.test(x.treeHead) &&
    typeof x.signature === 'string'
  );
}

/** Checks a proof with the public key alone: the checkpoints' signatures, then the hashes. */
export function checkProof(proof: unknown, publicKey: KeyObject): ProofCheck {
  const p = proof as AuditProof;
  const bad = (message: string): ProofCheck => ({ ok: false, kind: 'format', message });
  if (typeof p !== 'object' || p === null || !Array.isArray(p.path) || !p.path.every((h) => typeof h === 'string' && hex32.test(h)))
    return bad('not a sluice audit proof');
  const path = p.path.map((h) => Buffer.from(h, 'hex'));
  if (p.type === 'inclusion') {
    if (!wellFormed(p.checkpoint) || !Number.isSafeInteger(p.seq) || typeof p.record !== 'string')
      return bad('an inclusion proof needs seq, record, path and checkpoint');
    const signature = signatureProblem(p.checkpoint, publicKey);
    if (signature) return { ok: false, kind: 'signature', message: signature };
    const body = Buffer.from(p.record, 'base64');
    let recordSeq: unknown;
    try {
      recordSeq = (JSON.parse(body.toString('utf8')) as { seq?: unknown }).seq;
    } catch {
      return { ok: false, kind: 'proof', message: 'the record is not an audit record (not JSON)' };
    }
    if (recordSeq !== p.seq) return { ok: false, kind: 'proof', message: `the record says seq ${String(recordSeq)}, the proof ${p.seq}` };
    const n = p.checkpoint.treeSize;
    if (!inclusionHolds(leafHash(body), p.seq - 1, n, path, Buffer.from(p.checkpoint.treeHead, 'hex'))) {
      return {
        ok: false,
        kind: 'proof',
        message: `record ${p.seq} is not in the tree of checkpoint ${p.checkpoint.seq} with this path (the record or the path was altered)`,
      };
    }
    return {
      ok: true,
      summary: `record ${p.seq} is in the tree of ${n} records signed by checkpoint ${p.checkpoint.seq} (key ${p.checkpoint.keyId}, ${p.checkpoint.at})`,
    };
  }
  if (p.type === 'consistency') {
    if (!wellFormed(p.first) || !wellFormed(p.second)) return bad('a consistency proof needs first, second and path');
    for (const c of [p.first, p.second]) {
      const signature = signatureProblem(c, publicKey);
      if (signature) return { ok: false, kind: 'signature', message: signature };
    }
    const [a, b] = [p.first, p.second];
    if (!consistencyHolds(a.treeSize, b.treeSize, Buffer.from(a.treeHead, 'hex'), Buffer.from(b.treeHead, 'hex'), path)) {
      return {
        ok: false,
        kind: 'proof',
        message: `checkpoint ${b.seq}'s tree does not extend checkpoint ${a.seq}'s with this path: the log was rewritten between them (a fork), or the proof altered`,
      };
    }
    return { ok: true, summary: `checkpoint ${b.seq} (${b.treeSize} records) extends checkpoint ${a.seq} (${a.treeSize} records): nothing before it changed` };
  }
  return bad('type must be inclusion or consistency');
}
