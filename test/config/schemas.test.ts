// One spec, three outputs: the committed JSON schemas (schemas/) and the generated reference
// (docs/reference.md) are what the zod schemas make now, every field has a description, and
// the examples point their editors at the schemas.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { repoRoot } from '../../deploy/local/stack-config.ts';
import { helmValuesSchema, jsonText, referenceMarkdown, referenceRows, rulesJsonSchema, serviceJsonSchema, undescribed } from '../../src/config/reference.ts';

const read = (f: string) => readFileSync(join(repoRoot, f), 'utf8');
const stale = (f: string) => `${f} is not what the code makes: run \`npm run schemas\` and commit the result`;

test('the committed JSON schemas and docs/reference.md are current', () => {
  assert.equal(read('schemas/sluice.schema.json'), jsonText(serviceJsonSchema()), stale('schemas/sluice.schema.json'));
  assert.equal(read('schemas/rules.schema.json'), jsonText(rulesJsonSchema()), stale('schemas/rules.schema.json'));
  assert.equal(read('deploy/helm/sluice/values.schema.json'), jsonText(helmValuesSchema()), stale('deploy/helm/sluice/values.schema.json'));
  assert.equal(read('docs/reference.md'), referenceMarkdown(), stale('docs/reference.md'));
});

test('every field of both files carries a description', () => {
  assert.deepEqual(undescribed(serviceJsonSchema()), [], 'service config fields without .describe()');
  assert.deepEqual(undescribed(rulesJsonSchema()), [], 'rules fields without .describe()');
});

test('the examples name their schema for editors (yaml-language-server)', () => {
  for (const [file, schema] of [
    ['config/sluice.yaml', 'sluice'],
    ['config/sluice.compose.yaml', 'sluice'],
    ['config/rules.yaml', 'rules'],
  ] as const) {
    assert.equal(read(file).split('\n')[0], `# yaml-language-server: $schema=../schemas/${schema}.schema.json`, file);
  }
});

test("docs/configuration.md's table names only keys the schema has, with the schema's defaults", () => {
  const rows = new Map(referenceRows(serviceJsonSchema()).map((r) => [r.path, r]));
  const problems: string[] = [];
  for (const line of read('docs/configuration.md').split('\n')) {
    const m = /^\| `([^|]+)` \| ([^|]*) \|/.exec(line);
    if (!m) continue;
    // "`a.b.minMs` / `maxMs`": siblings share the first key's parent
    const keys = (m[1] as string).split(/` \/ `/).map((k) => k.trim());
    const parent = (keys[0] as string).split('.').slice(0, -1).join('.');
    const paths = keys.map((k, i) => (i === 0 || k.includes('.') ? k : `${parent}.${k}`));
    const defaults = [...(m[2] as string).matchAll(/`([^`]*)`/g)].map((d) => d[1] as string);
    for (const [i, path] of paths.entries()) {
      const row = rows.get(path);
      if (!row) {
        problems.push(`${path}: not in the schema`);
        continue;
      }
      const documented = defaults.length === paths.length ? defaults[i] : undefined;
      if (documented !== undefined && row.default !== '' && JSON.stringify(JSON.parse(row.default)) !== JSON.stringify(parseDefault(documented))) {
        problems.push(`${path}: documented default ${documented}, the schema says ${row.default}`);
      }
    }
  }
  assert.deepEqual(problems, []);
});

function parseDefault(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
