// One writer per audit directory: two would fork the chain. The lock file names the writer's
// pid; a lock left by a process that is gone (SIGKILL) is taken over.
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AuditFatalError } from './group-commit.ts';

const lockFile = 'writer.pid';

/**
 * One writer per directory: two would fork the chain. The lock names the writer's pid; a lock
 * left by a process that is gone (SIGKILL) is taken over.
 */
export function lockDir(dir: string): void {
  const file = join(dir, lockFile);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(file, `${process.pid}\n`, { flag: 'wx' });
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const pid = Number(readFileSync(file, 'utf8').trim());
    if (pid === process.pid) return;
    if (Number.isInteger(pid) && pid > 0 && alive(pid)) {
      throw new AuditFatalError(`the audit log ${dir} is being written by process ${pid}: one writer per directory (give each worker its own audit.dir)`);
    }
    rmSync(file, { force: true }); // its writer is gone
  }
  throw new AuditFatalError(`cannot take the writer lock of ${dir}`);
}

/** The pid of a live process writing `dir`, if any (verify and repair must not race it). */
export function liveWriter(dir: string): number | undefined {
  let pid: number;
  try {
    pid = Number(readFileSync(join(dir, lockFile), 'utf8').trim());
  } catch {
    return undefined;
  }
  return Number.isInteger(pid) && pid > 0 && pid !== process.pid && alive(pid) ? pid : undefined;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function unlockDir(dir: string): void {
  rmSync(join(dir, lockFile), { force: true });
}
