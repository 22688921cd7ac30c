// Reads logs back from the archive for `audit verify` and `audit replay`: every segment under
// s3://bucket/prefix, in the version sluice wrote (the first one, under Object Lock), into a
// private temporary directory, one per worker, where the verifier reads them as any log. What
// someone did to the archive since is reported, not followed: a delete marker hiding a segment,
// or a later version written over it.
import { createWriteStream, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { segmentPattern } from '../log/format.ts';
import type { ObjectVersion, S3Store } from './s3.ts';

export interface ArchivedLog {
  /** How to name it: s3://bucket/prefix/worker/ */
  readonly name: string;
  /** The local copy. */
  readonly dir: string;
  readonly segments: number;
  /** What the archive shows was done to it (hidden or overwritten segments); the original bytes are read regardless. */
  readonly notes: readonly string[];
}

/**
 * The logs under `prefix`: its segments when they sit directly there, else one log per
 * sub-prefix that holds segments (one per worker: `<prefix><worker>/<segment>`).
 */
export async function fetchArchivedLogs(store: S3Store, prefix: string): Promise<{ logs: ArchivedLog[]; root: string; cleanup: () => void }> {
  const versions = await store.versions(prefix);
  const byLog = new Map<string, Map<string, ObjectVersion[]>>();
  for (const v of versions) {
    const rest = v.key.slice(prefix.length);
    const slash = rest.lastIndexOf('/');
    const [sub, name] = slash < 0 ? ['', rest] : [rest.slice(0, slash + 1), rest.slice(slash + 1)];
    if (!segmentPattern.test(name) || sub.split('/').length > 2) continue; // not a segment, or deeper than one worker level
    const log = byLog.get(sub) ?? new Map<string, ObjectVersion[]>();
    byLog.set(sub, log);
    log.set(name, [...(log.get(name) ?? []), v]);
  }
  const root = mkdtempSync(join(tmpdir(), 'sluice-archive-'));
  const cleanup = () => rmSync(root, { recursive: true, force: true });
  try {
    const logs: ArchivedLog[] = [];
    // segments straight under the prefix make it one log; else each worker's sub-prefix is one
    const subs = byLog.has('') ? [''] : [...byLog.keys()].sort();
    for (const [i, sub] of subs.entries()) {
      const dir = join(root, String(i));
      mkdirSync(dir);
      const notes: string[] = [];
      const segments = byLog.get(sub) as Map<string, ObjectVersion[]>;
      for (const [name, all] of [...segments].sort(([a], [b]) => (a < b ? -1 : 1))) {
        // S3 lists a key's versions newest first: the last is the one written first
        const kept = all.filter((v) => !v.deleteMarker);
        const first = kept.at(-1);
        const key = `${prefix}${sub}${name}`;
        if (first === undefined) {
          notes.push(`${key}: only a delete marker is left (no version to read)`);
          continue;
        }
        if (all.some((v) => v.deleteMarker && v.latest)) notes.push(`${key}: hidden by a delete marker; the version written first is read`);
        if (kept.length > 1) notes.push(`${key}: ${kept.length} versions (written over later); the one written first is read`);
        await pipeline(await store.read(key, first.versionId), createWriteStream(join(dir, name)));
      }
      logs.push({ name: `s3://${store.bucket}/${prefix}${sub}`, dir, segments: segments.size, notes });
    }
    return { logs, root, cleanup };
  } catch (err) {
    cleanup();
    throw err;
  }
}
