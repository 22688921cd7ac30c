// Room on the audit log's volume. A worker (re)started while the disk is still full waits, not
// ready, before it opens the log and takes a command: otherwise it would take the broker's
// redeliveries, fail its first write (exit 70), be restarted and fail again, a crash loop that
// may leave a torn record each time. A running worker still stops on a failed write, as a
// database does on a failed fsync; this only keeps it from starting into one.
import { existsSync, statfsSync } from 'node:fs';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { monotonicMs } from '../../clock.ts';

/** Bytes an unprivileged writer may still use on the volume holding `dir` (or its nearest existing parent). */
export function freeBytes(dir: string): number {
  let at = dir;
  while (!existsSync(at) && dirname(at) !== at) at = dirname(at);
  const s = statfsSync(at);
  return Number(s.bavail) * Number(s.bsize);
}

export interface RoomWait {
  readonly log: Logger;
  /** Why the worker is not ready while it waits (undefined: it no longer waits). */
  readonly waiting: (reason: string | undefined) => void;
  readonly signal?: AbortSignal | undefined;
  /** Each sample of the free bytes (the metric). */
  readonly sampled: (free: number) => void;
  readonly everyMs?: number;
}

/** Resolves once the volume has `minFree` bytes free; rejects only when `signal` aborts. */
export async function untilRoom(dir: string, minFree: number, w: RoomWait): Promise<void> {
  let toldAt: number | undefined;
  for (;;) {
    const free = freeBytes(dir);
    w.sampled(free);
    if (free >= minFree) {
      if (toldAt !== undefined) {
        w.log.info({ dir, freeBytes: free, minFreeBytes: minFree }, 'audit log: room on the disk again: opening the log');
        w.waiting(undefined);
      }
      return;
    }
    w.waiting(`disk full: ${free} bytes free for ${dir}, below audit.minFreeBytes (${minFree}): waiting for room before taking commands`);
    // one line when it starts waiting, a reminder every 5 minutes: not a line per check
    if (toldAt === undefined || monotonicMs() - toldAt >= 300_000) {
      w.log.error(
        { dir, freeBytes: free, minFreeBytes: minFree },
        'audit log: the disk is full: waiting for room before opening the log and taking commands (not ready); free space on its volume, or raise the volume',
      );
      toldAt = monotonicMs();
    }
    await sleep(w.everyMs ?? 2_000, undefined, w.signal ? { signal: w.signal } : {});
  }
}
