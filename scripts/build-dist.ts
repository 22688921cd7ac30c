// `npm run build` from a script: compiles src/ into dist/, which the bench and the demo run, as
// users run the installed `sluice` command.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { repoRoot } from '../deploy/local/stack-config.ts';

export function buildDist(): void {
  execFileSync(join(repoRoot, 'scripts/node'), [join(repoRoot, 'node_modules/typescript/bin/tsc'), '-p', join(repoRoot, 'tsconfig.build.json')], {
    stdio: 'inherit',
  });
}
