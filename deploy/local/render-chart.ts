// The plain Kubernetes manifest as rendered from the chart's defaults (release "sluice").
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { repoRoot } from './stack-config.ts';

export const manifestHeader = `# GENERATED from deploy/helm/sluice (its default values, release "sluice") by \`npm run kubernetes\`;
# edit the chart, not this file. \`kubectl apply -f deploy/kubernetes/sluice.yaml\` deploys three
# workers as a StatefulSet: stable client ids (the pod names) resume their MQTT sessions, and each
# has its own persistent volume for the audit log and its exactly-once ledger.
`;

export function renderChart(helm: string, args: readonly string[] = []): string {
  const r = spawnSync(helm, ['template', 'sluice', join(repoRoot, 'deploy/helm/sluice'), ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`helm template failed:\n${r.stderr}`);
  return manifestHeader + r.stdout;
}
