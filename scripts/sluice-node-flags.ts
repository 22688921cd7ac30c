// The node flags sluice runs with, read from the one place that sets them for users: the first
// line of src/cli.ts, which the installed `sluice` command keeps (dist/cli.js). The Dockerfile and
// `npm run sluice` repeat them (test/package checks that they agree); the demo, the tests and the
// benchmark start sluice with them, so each runs what users run.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../deploy/local/stack-config.ts';

export const sluiceNodeFlags: readonly string[] = (() => {
  const first = readFileSync(join(repoRoot, 'src/cli.ts'), 'utf8').split('\n', 1)[0] ?? '';
  const m = /^#!\/usr\/bin\/env -S node((?: --[^ ]+)*)$/.exec(first);
  if (!m) throw new Error(`src/cli.ts: its first line is not "#!/usr/bin/env -S node [--flag ...]": ${first}`);
  return (m[1] as string).split(' ').filter(Boolean);
})();
