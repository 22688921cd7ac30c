// One spec, three outputs: the committed JSON schemas (schemas/) and the generated reference
// (docs/reference.md) are what the zod schemas make now, every field has a description, and
// the examples point their editors at the schemas.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { repoRoot } from '../../deploy/local/stack-config.ts';
import { jsonText, referenceMarkdown, rulesJsonSchema, serviceJsonSchema, undescribed } from '../../src/config/reference.ts';

const read = (f: string) => readFileSync(join(repoRoot, f), 'utf8');
const stale = (f: string) => `${f} is not what the code makes: run \`npm run schemas\` and commit the result`;

test('the committed JSON schemas and docs/reference.md are current', () => {
  assert.equal(read('schemas/sluice.schema.json'), jsonText(serviceJsonSchema()), stale('schemas/sluice.schema.json'));
  assert.equal(read('schemas/rules.schema.json'), jsonText(rulesJsonSchema()), stale('schemas/rules.schema.json'));
  assert.equal(read('docs/reference.md'), referenceMarkdown(), stale('docs/reference.md'));
});

test('every field of both files carries a description', () => {
  assert.deepEqual(undescribed(serviceJsonSchema()), [], 'service config fields without .describe()');
  assert.deepEqual(undescribed(rulesJsonSchema()), [], 'rules fields without .describe()');
});

test('the examples name their schema for editors (yaml-language-server)', () => {
  for (const [file, schema] of [['config/sluice.yaml', 'sluice'], ['config/sluice.compose.yaml', 'sluice'], ['config/rules.yaml', 'rules']] as const) {
    assert.equal(read(file).split('\n')[0], `# yaml-language-server: $schema=../schemas/${schema}.schema.json`, file);
  }
});
