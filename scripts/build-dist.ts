// `npm run build` from a script: compiles src/ into dist/ and bundles the Kafka client into
// vendor/, which the bench and the demo run, as users run the installed `sluice` command.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { repoRoot } from '../deploy/local/stack-config.ts';
import { bundleKafkaClient } from './bundle-kafka-client.ts';

export async function buildDist(): Promise<void> {
  execFileSync(join(repoRoot, 'scripts/node'), [join(repoRoot, 'node_modules/typescript/bin/tsc'), '-p', join(repoRoot, 'tsconfig.build.json')], {
    stdio: 'inherit',
  });
  await bundleKafkaClient();
}
