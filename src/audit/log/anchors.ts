// Anchors: each signed checkpoint published outside the log's directory, to witnesses the config
// names (a file on another volume, an HTTP endpoint, a compacted Kafka topic). A log cut short or restored from an older
// copy still verifies on its own, but not against a checkpoint a witness kept: `sluice audit
// verify --anchors` compares them. Publishing is off the commit path: a witness that is down
// never holds a command, it is retried (only its newest anchor waits: it covers every earlier
// one), counted, and named by readiness once it has failed for too long.
import { mkdirSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { dirname } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { monotonicMs } from '../../clock.ts';
import type { CheckpointRecord } from './format.ts';

/** One anchor: a checkpoint as a witness keeps it (one JSON line in a file), with the worker whose log it is. */
export interface Anchor {
  readonly v: 1;
  readonly worker: string;
  readonly seq: number;
  readonly prev: string;
  readonly treeSize?: number;
  readonly treeHead?: string;
  readonly at: string;
  readonly keyId: string;
  readonly signature: string;
}

export function anchorOf(checkpoint: CheckpointRecord, worker: string): Anchor {
  const { seq, prev, treeSize, treeHead, at, keyId, signature } = checkpoint;
  return { v: 1, worker, seq, prev, ...(treeSize === undefined ? {} : { treeSize, treeHead }), at, keyId, signature };
}

export interface Witness {
  /** How metrics and logs name it: file, http or kafka. */
  readonly name: string;
  publish(anchor: Anchor): Promise<void>;
  close?(): Promise<void>;
}

/** JSON lines appended to a file, each fdatasync'd: put it on another volume than the log (or another machine's mount). */
export function fileWitness(path: string): Witness {
  return {
    name: 'file',
    async publish(anchor) {
      mkdirSync(dirname(path), { recursive: true });
      const handle = await open(path, 'a');
      try {
        await handle.write(`${JSON.stringify(anchor)}\n`);
        await handle.datasync();
      } finally {
        await handle.close();
      }
    },
  };
}

/** A POST of the anchor as JSON; any 2xx is kept. */
export function httpWitness(url: string, token: string | undefined, timeoutMs: number): Witness {
  return {
    name: 'http',
    async publish(anchor) {
      const response = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
        body: JSON.stringify(anchor),
        signal: AbortSignal.timeout(timeoutMs),
      });
      await response.body?.cancel();
      if (!response.ok) throw new Error(`HTTP ${response.status} from the witness`);
    },
  };
}

export interface AnchorEvents {
  readonly published: (witness: string, anchor: Anchor) => void;
  readonly failed: (witness: string, err: Error) => void;
}

/** One witness's lane: its newest anchor not yet published, and since when it fails. */
interface Lane {
  readonly witness: Witness;
  pending: Anchor | undefined;
  running: boolean;
  lastSeq: number;
  failingSince: number | undefined;
  lastError: string;
}

export class AnchorPublisher {
  private readonly lanes: Lane[];
  private readonly events: AnchorEvents;
  private readonly retryMs: number;
  private readonly maxFailingMs: number;
  private closed = false;

  constructor(witnesses: readonly Witness[], events: AnchorEvents, options: { readonly retryMs?: number; readonly maxFailingMs: number }) {
    this.lanes = witnesses.map((witness) => ({ witness, pending: undefined, running: false, lastSeq: 0, failingSince: undefined, lastError: '' }));
    this.events = events;
    this.retryMs = options.retryMs ?? 5_000;
    this.maxFailingMs = options.maxFailingMs;
  }

  /** Hands the checkpoint to every witness; returns at once. */
  publish(anchor: Anchor): void {
    for (const lane of this.lanes) {
      lane.pending = anchor;
      void this.drain(lane);
    }
  }

  /** The last anchored seq per witness, and how long each has failed (0: not failing). */
  state(): Array<{ witness: string; lastSeq: number; failingMs: number }> {
    const now = monotonicMs();
    return this.lanes.map((l) => ({ witness: l.witness.name, lastSeq: l.lastSeq, failingMs: l.failingSince === undefined ? 0 : now - l.failingSince }));
  }

  /** Witnesses failing longer than allowed, for readiness. */
  problems(): string[] {
    const now = monotonicMs();
    return this.lanes
      .filter((l) => l.failingSince !== undefined && now - l.failingSince > this.maxFailingMs)
      .map(
        (l) =>
          `audit anchors: the ${l.witness.name} witness has failed for ${Math.round((now - (l.failingSince ?? now)) / 1000)} s (${l.lastError}): checkpoints after seq ${l.lastSeq} are not anchored`,
      );
  }

  /** Waits up to `deadlineMs` for what is pending, then stops retrying. */
  async close(deadlineMs = 2_000): Promise<void> {
    const until = monotonicMs() + deadlineMs;
    while (this.lanes.some((l) => l.pending !== undefined || l.running) && monotonicMs() < until) await delay(20, undefined, { ref: false });
    this.closed = true;
    await Promise.all(this.lanes.map((l) => l.witness.close?.().catch(() => {})));
  }

  private async drain(lane: Lane): Promise<void> {
    if (lane.running) return;
    lane.running = true;
    try {
      while (lane.pending !== undefined && !this.closed) {
        const anchor = lane.pending;
        try {
          await lane.witness.publish(anchor);
          if (lane.pending === anchor) lane.pending = undefined;
          lane.lastSeq = Math.max(lane.lastSeq, anchor.seq);
          lane.failingSince = undefined;
          this.events.published(lane.witness.name, anchor);
        } catch (err) {
          lane.failingSince ??= monotonicMs();
          lane.lastError = (err as Error).message;
          this.events.failed(lane.witness.name, err as Error);
          await delay(this.retryMs, undefined, { ref: false });
        }
      }
    } finally {
      lane.running = false;
    }
  }
}

/** The anchors of a witness file (JSON lines); a bad line is an error naming it. */
export function parseAnchors(text: string, file: string): Anchor[] {
  const out: Anchor[] = [];
  for (const [i, line] of text.split('\n').entries()) {
    if (line.trim() === '') continue;
    let a: Anchor;
    try {
      a = JSON.parse(line) as Anchor;
    } catch {
      throw new Error(`${file}:${i + 1}: not an anchor (not JSON)`);
    }
    if (!Number.isSafeInteger(a.seq) || typeof a.prev !== 'string' || typeof a.worker !== 'string' || typeof a.signature !== 'string') {
      throw new Error(`${file}:${i + 1}: not an anchor (needs worker, seq, prev, signature)`);
    }
    out.push(a);
  }
  return out;
}
