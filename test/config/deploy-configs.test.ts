// The configs users copy stay valid: the example, the Compose one, and the Kubernetes
// ConfigMap's embedded files are checked against the same schemas sluice loads them with.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { compileRules, loadConfig } from '../../src/config/load.ts';
import { rulesFile } from '../../src/config/rules-schema.ts';
import { serviceConfig } from '../../src/config/service-schema.ts';

const root = join(import.meta.dirname, '../..');

test('config/sluice.yaml and config/sluice.compose.yaml load, with the audit log for the command route', () => {
  for (const file of ['config/sluice.yaml', 'config/sluice.compose.yaml']) {
    const c = loadConfig(join(root, file), { env: { INFLUX_TOKEN: 'x' } });
    assert.equal(c.rules.uses('audit'), true, file);
    assert.ok((c.service.audit as { dir?: string } | undefined)?.dir, file);
    assert.ok(c.rules.subscriptions.some((s) => s.qos === 2), `${file}: commands at QoS 2`);
  }
});

test("the Kubernetes manifest (rendered from the chart) holds a valid service config and rules", () => {
  const docs = parseAllDocuments(readFileSync(join(root, 'deploy/kubernetes/sluice.yaml'), 'utf8')).map((d) => d.toJS()).filter((d) => d !== null);
  const configMap = docs.find((d) => d.kind === 'ConfigMap') as { data: Record<string, string> };
  const { parse } = { parse: (text: string) => parseAllDocuments(text)[0]?.toJS() };
  const service = serviceConfig.parse(parse(configMap.data['sluice.yaml'] as string));
  const rules = compileRules(rulesFile.parse(parse(configMap.data['rules.yaml'] as string)));
  assert.equal(rules.uses('audit'), true);
  assert.equal((service as { audit?: { dir: string } }).audit?.dir, '/var/lib/sluice/audit');
  const statefulSet = docs.find((d) => d.kind === 'StatefulSet') as { spec: { volumeClaimTemplates: Array<{ metadata: { name: string } }> } };
  assert.ok(statefulSet.spec.volumeClaimTemplates.some((v) => v.metadata.name === 'audit'), 'the audit log lives on a persistent volume');
});
