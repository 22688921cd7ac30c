// A log against the anchors its witnesses kept (anchors.ts): a log shorter than an anchored
// checkpoint was truncated or restored from an older copy; a log whose record at an anchored
// checkpoint's place differs was rewritten after it (a fork, even if re-signed with the same
// key). Records after the newest anchor are the window no anchor covers.
import type { KeyObject } from 'node:crypto';
import type { Anchor } from '../log/anchors.ts';
import { type CheckpointRecord, checkpointValid } from '../log/format.ts';

export interface AnchorFinding {
  readonly kind: 'truncated' | 'fork' | 'signature';
  readonly seq: number;
  readonly message: string;
}

export interface AnchorReport {
  /** Anchors of this log compared. */
  readonly anchors: number;
  /** The newest anchored checkpoint (0 when none). */
  readonly newest: number;
  readonly finding?: AnchorFinding;
}

/** The anchors of one worker's log: the one named, or the only worker the anchors name, or the worker the log's records name. */
export function anchorsOfLog(anchors: readonly Anchor[], worker: string | undefined, logWorker: string | undefined): { anchors: Anchor[]; worker: string } {
  const workers = [...new Set(anchors.map((a) => a.worker))];
  const chosen = worker ?? (workers.length === 1 ? workers[0] : logWorker);
  if (chosen === undefined) throw new Error(`the anchors name ${workers.length} workers (${workers.join(', ')}) and the log names none: give --worker`);
  return { anchors: anchors.filter((a) => a.worker === chosen), worker: chosen };
}

/**
 * `lastSeq`: where the log ends; `checkpoints`: the log's checkpoints at the anchored places
 * (read while verifying). A public key also checks each anchor's own signature.
 */
export function checkAnchors(
  anchors: readonly Anchor[],
  lastSeq: number,
  checkpoints: ReadonlyMap<number, CheckpointRecord>,
  publicKey: KeyObject | undefined,
): AnchorReport {
  const sorted = [...anchors].sort((a, b) => a.seq - b.seq);
  const newest = sorted.at(-1)?.seq ?? 0;
  const report = (finding?: AnchorFinding): AnchorReport => ({ anchors: sorted.length, newest, ...(finding ? { finding } : {}) });
  if (publicKey) {
    const forged = sorted.find((a) => !checkpointValid({ ...a, v: 1, type: 'checkpoint' } as CheckpointRecord, publicKey));
    if (forged)
      return report({
        kind: 'signature',
        seq: forged.seq,
        message: `the anchor of checkpoint ${forged.seq} is not signed by this key: the anchors cannot be trusted`,
      });
  }
  const past = sorted.filter((a) => a.seq > lastSeq);
  if (past.length > 0) {
    const a = past.at(-1) as Anchor;
    return report({
      kind: 'truncated',
      seq: a.seq,
      message: `the log ends at seq ${lastSeq}, but checkpoint ${a.seq} was anchored (${a.at}): records ${lastSeq + 1}..${a.seq} are missing (the log was cut short, or an older copy restored)`,
    });
  }
  for (const a of sorted) {
    const c = checkpoints.get(a.seq);
    const same = c !== undefined && c.prev === a.prev && c.treeHead === a.treeHead && c.signature === a.signature;
    if (!same) {
      return report({
        kind: 'fork',
        seq: a.seq,
        message:
          c === undefined
            ? `record ${a.seq} should be the checkpoint anchored at ${a.at} and is not a checkpoint: the log was rewritten (a fork)`
            : `checkpoint ${a.seq} differs from the one anchored at ${a.at} (chain head ${c.prev.slice(0, 12)}… where the anchor has ${a.prev.slice(0, 12)}…): the log was rewritten and signed again (a fork)`,
      });
    }
  }
  return report();
}
