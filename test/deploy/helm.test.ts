// The Helm chart, for real: helm (built from the Go module proxy) lints it and renders it; the
// rendered manifests carry what sluice needs (stable client ids, a volume per pod for the audit
// log, probes, a disruption budget, a non-root read-only container, a valid config and rules),
// the optional ServiceMonitor and Secret render when asked, and deploy/kubernetes/sluice.yaml is
// exactly the chart's default rendering (one source).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { ensureHelm } from '../../deploy/local/helm.ts';
import { renderChart } from '../../deploy/local/render-chart.ts';
import { repoRoot, stackConfig } from '../../deploy/local/stack-config.ts';
import { compileRules } from '../../src/config/load.ts';
import { rulesFile } from '../../src/config/rules-schema.ts';
import { serviceConfig } from '../../src/config/service-schema.ts';

type Doc = { kind: string; metadata: { name: string }; spec?: any; data?: Record<string, string>; stringData?: Record<string, string> };
const docsOf = (text: string) =>
  parseAllDocuments(text)
    .map((d) => d.toJS() as Doc)
    .filter((d) => d !== null);
const chart = join(repoRoot, 'deploy/helm/sluice');

test('helm lint passes; helm template renders what sluice needs', { timeout: 900_000 }, async (t) => {
  const started = Date.now();
  const helm = await ensureHelm(stackConfig().cacheDir);
  t.diagnostic(`helm ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  const lint = spawnSync(helm, ['lint', '--strict', chart], { encoding: 'utf8' });
  assert.equal(lint.status, 0, `helm lint:\n${lint.stdout}${lint.stderr}`);
  const lintAll = spawnSync(helm, ['lint', '--strict', chart, '-f', join(chart, 'ci/all-features-values.yaml')], { encoding: 'utf8' });
  assert.equal(lintAll.status, 0, `helm lint with every feature:\n${lintAll.stdout}${lintAll.stderr}`);
  // values.schema.json: a mistyped key in the embedded config fails before a pod starts
  const typo = spawnSync(helm, ['template', 'sluice', chart, '--set', 'config.mqtt.recieveMaximum=10'], { encoding: 'utf8' });
  assert.notEqual(typo.status, 0);
  assert.match(typo.stderr, /at '\/config\/mqtt': additional properties 'recieveMaximum' not allowed/);

  const docs = docsOf(renderChart(helm));
  const kinds = docs.map((d) => d.kind).sort();
  assert.deepEqual(kinds, ['ConfigMap', 'PodDisruptionBudget', 'Service', 'ServiceAccount', 'StatefulSet'], 'no Secret or ServiceMonitor by default');
  const sts = docs.find((d) => d.kind === 'StatefulSet') as Doc;
  const pod = sts.spec.template.spec;
  const c = pod.containers[0];
  assert.deepEqual(
    c.env.find((e: { name: string }) => e.name === 'SLUICE_CLIENT_ID').valueFrom,
    { fieldRef: { fieldPath: 'metadata.name' } },
    'client id = pod name',
  );
  assert.equal(sts.spec.volumeClaimTemplates[0].metadata.name, 'data');
  assert.ok(
    c.volumeMounts.some((m: { name: string; mountPath: string }) => m.name === 'data' && m.mountPath === '/var/lib/sluice'),
    'everything sluice writes on the volume',
  );
  assert.equal(pod.automountServiceAccountToken, false, 'no Kubernetes API token in the pod');
  assert.equal(
    c.volumeMounts.some((m: { name: string }) => m.name === 'secrets'),
    false,
    'no Secret mounted when none is given',
  );
  assert.equal(c.livenessProbe.httpGet.path, '/healthz');
  assert.equal(c.livenessProbe.timeoutSeconds, 2);
  assert.equal(c.readinessProbe.httpGet.path, '/readyz');
  assert.equal(pod.securityContext.runAsNonRoot, true);
  assert.equal(c.securityContext.readOnlyRootFilesystem, true);
  assert.equal(c.securityContext.allowPrivilegeEscalation, false);
  assert.ok(
    pod.volumes.some((v: { name: string }) => v.name === 'tmp'),
    'a writable /tmp on a read-only root',
  );
  assert.ok(pod.terminationGracePeriodSeconds * 1000 > 20_000, 'grace period above the shutdown deadline');
  const pdb = docs.find((d) => d.kind === 'PodDisruptionBudget') as Doc;
  assert.equal(pdb.spec.maxUnavailable, 1);
  // the ConfigMap holds a config and rules sluice accepts
  const cm = docs.find((d) => d.kind === 'ConfigMap') as Doc;
  const service = serviceConfig.parse(parseAllDocuments(cm.data?.['sluice.yaml'] as string)[0]?.toJS());
  const rules = compileRules(rulesFile.parse(parseAllDocuments(cm.data?.['rules.yaml'] as string)[0]?.toJS()));
  assert.equal(rules.uses('audit'), true);
  assert.equal((service as { http: { host: string } }).http.host, '0.0.0.0');

  // optional parts
  const more = docsOf(renderChart(helm, ['--set', 'serviceMonitor.enabled=true', '--set', 'secrets.data.influx-token=t0ken']));
  const sm = more.find((d) => d.kind === 'ServiceMonitor') as Doc;
  assert.equal(sm.spec.endpoints[0].path, '/metrics');
  assert.equal((more.find((d) => d.kind === 'Secret') as Doc).stringData?.['influx-token'], 't0ken');
  const existing = docsOf(renderChart(helm, ['--set', 'secrets.existingSecret=mine', '--set', 'secrets.data.x=y']));
  assert.equal(
    existing.some((d) => d.kind === 'Secret'),
    false,
    'an existing Secret is used, not made',
  );
  assert.equal(
    (existing.find((d) => d.kind === 'StatefulSet') as Doc).spec.template.spec.volumes.find((v: { name: string }) => v.name === 'secrets').secret.secretName,
    'mine',
  );

  // NOTES: the image has no kill binary; signals go through node itself
  const notes = readFileSync(join(chart, 'templates/NOTES.txt'), 'utf8');
  assert.doesNotMatch(notes, /--\s*kill\b/, 'no `kubectl exec ... -- kill`: the slim image has no kill binary');
  assert.match(notes, /-- node -e "process\.kill\(1, 'SIGHUP'\)"/);

  // one source: the plain manifest is the chart's default rendering
  assert.equal(
    readFileSync(join(repoRoot, 'deploy/kubernetes/sluice.yaml'), 'utf8'),
    renderChart(helm),
    "deploy/kubernetes/sluice.yaml is not the chart's rendering: run `npm run kubernetes` and commit it",
  );
});
