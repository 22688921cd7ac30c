// A small tmpfs, so a disk fills for real (ENOSPC), with no fault injection: mounted on a fresh
// directory for one test and unmounted after it. Needs root; without it the test is skipped.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';

/** The mounted directory, or undefined when the test was skipped (no root). */
export function smallTmpfs(t: TestContext, size: string, name = 'sluice-tmpfs-'): string | undefined {
  const dir = mkdtempSync(join(tmpdir(), name));
  const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { encoding: 'utf8' });
  if (mounted.status !== 0) {
    t.skip(`needs root to mount a small tmpfs (${mounted.stderr.trim() || 'mount failed'})`);
    return undefined;
  }
  t.after(() => {
    spawnSync('umount', ['-l', dir]);
    rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

/** Grows (or shrinks) the tmpfs: the operator making room. */
export function resizeTmpfs(dir: string, size: string): void {
  const r = spawnSync('mount', ['-o', `remount,size=${size}`, dir], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`remount ${dir} size=${size}: ${r.stderr.trim()}`);
}
