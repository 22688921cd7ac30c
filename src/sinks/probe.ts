// Helpers for the plugins' `sluice check --connect` probes: a time bound, and whether a
// directory sluice will write in is writable (or can be made).
import { access, constants, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Probe } from './plugin.ts';

/** The promise, or an error saying what did not answer within the bound. */
export async function within<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A directory sluice writes in: writable if it exists, else its nearest existing parent must be (it is made at start). */
export async function directoryProbe(dir: string): Promise<Probe> {
  for (let d = dir; ; d = dirname(d)) {
    try {
      const s = await stat(d);
      if (!s.isDirectory()) return { ok: false, detail: `${dir}: ${d} is not a directory` };
      await access(d, constants.W_OK);
      return { ok: true, detail: d === dir ? `${dir} writable` : `${dir} absent, made at start (${d} is writable)` };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EACCES' || code === 'EROFS' || code === 'EPERM') return { ok: false, detail: `${dir}: ${d} is not writable (${code})` };
      if (code !== 'ENOENT' || dirname(d) === d) return { ok: false, detail: `${dir}: ${code ?? (err as Error).message}` };
    }
  }
}
