// Secrets never sit in a config file: a config names an environment variable or a file, and
// the value is read at start. An error says where the secret was looked for, never its value.
import { readFileSync } from 'node:fs';
import { z } from 'zod';

export const secretRef = z.union(
  [
    z.strictObject({ env: z.string().min(1).describe('environment variable holding the secret') }),
    z.strictObject({ file: z.string().min(1).describe('file holding the secret (trailing newline ignored)') }),
    // the value itself is never repeated: it may be the secret
  ],
  { error: 'a secret is never written in the file: give { env: VARIABLE } or { file: PATH } (docs/configuration.md)' },
);

export type SecretRef = z.infer<typeof secretRef>;

/** A missing secret (unset variable, unreadable file): the message names the place only. */
export class SecretError extends Error {
  override readonly name = 'SecretError';
}

export function resolveSecret(ref: SecretRef, what: string, env: NodeJS.ProcessEnv = process.env): string {
  if ('env' in ref) {
    const v = env[ref.env];
    if (v === undefined || v === '') throw new SecretError(`${what}: environment variable ${ref.env} is not set`);
    return v;
  }
  try {
    return readFileSync(ref.file, 'utf8').replace(/\r?\n$/, '');
  } catch (err) {
    throw new SecretError(`${what}: cannot read secret file ${ref.file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
}
