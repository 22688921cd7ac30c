// `npm run kubernetes`: renders the Helm chart's defaults into deploy/kubernetes/sluice.yaml, the
// plain manifest for `kubectl apply -f` (one source: the chart; test/deploy/helm.test.ts fails
// when the file drifts from it).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensureHelm } from '../deploy/local/helm.ts';
import { renderChart } from '../deploy/local/render-chart.ts';
import { repoRoot, stackConfig } from '../deploy/local/stack-config.ts';

const helm = await ensureHelm(stackConfig().cacheDir);
writeFileSync(join(repoRoot, 'deploy/kubernetes/sluice.yaml'), renderChart(helm));
process.stdout.write('wrote deploy/kubernetes/sluice.yaml from deploy/helm/sluice\n');
