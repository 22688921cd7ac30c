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

test("config/sluice.yaml, config/sluice.compose.yaml and the image's config/sluice.container.yaml load, with the audit log for the command route", () => {
  for (const file of ['config/sluice.yaml', 'config/sluice.compose.yaml', 'config/sluice.container.yaml']) {
    const c = loadConfig(join(root, file), { env: { INFLUX_TOKEN: 'x' } });
    assert.equal(c.rules.uses('audit'), true, file);
    assert.ok((c.service.audit as { dir?: string } | undefined)?.dir, file);
    assert.ok(
      c.rules.subscriptions.some((s) => s.qos === 2),
      `${file}: commands at QoS 2`,
    );
  }
});

test('the Kubernetes manifest (rendered from the chart) holds a valid service config and rules', () => {
  const docs = parseAllDocuments(readFileSync(join(root, 'deploy/kubernetes/sluice.yaml'), 'utf8'))
    .map((d) => d.toJS())
    .filter((d) => d !== null);
  const configMap = docs.find((d) => d.kind === 'ConfigMap') as { data: Record<string, string> };
  const { parse } = { parse: (text: string) => parseAllDocuments(text)[0]?.toJS() };
  const service = serviceConfig.parse(parse(configMap.data['sluice.yaml'] as string));
  const rules = compileRules(rulesFile.parse(parse(configMap.data['rules.yaml'] as string)));
  assert.equal(rules.uses('audit'), true);
  assert.equal((service as { audit?: { dir: string } }).audit?.dir, '/var/lib/sluice/audit');
  const statefulSet = docs.find((d) => d.kind === 'StatefulSet') as { spec: { volumeClaimTemplates: Array<{ metadata: { name: string } }> } };
  assert.ok(
    statefulSet.spec.volumeClaimTemplates.some((v) => v.metadata.name === 'data'),
    'the audit log lives on a persistent volume',
  );
});

test("the image's default config listens on every interface and writes only under its volume, /var/lib/sluice; the Dockerfile runs it", () => {
  const c = loadConfig(join(root, 'config/sluice.container.yaml'), { env: { SLUICE_MQTT_URL: 'mqtt://broker.example:1883' } });
  const s = c.service as Record<string, any>;
  assert.equal(s.http.host, '0.0.0.0');
  assert.equal(s.mqtt.url, 'mqtt://broker.example:1883', 'addresses from the environment');
  assert.equal(loadConfig(join(root, 'config/sluice.container.yaml'), { env: {} }).service.mqtt.url, 'mqtt://mosquitto:1883', 'with a default');
  for (const p of [s.audit.dir, s.sparkplug.stateDir]) assert.match(p, /^\/var\/lib\/sluice\//);
  const dockerfile = readFileSync(join(root, 'Dockerfile'), 'utf8');
  assert.match(dockerfile, /^VOLUME \/var\/lib\/sluice$/m);
  assert.match(dockerfile, /^CMD \["run", "--config", "config\/sluice.container.yaml"\]$/m);
});
