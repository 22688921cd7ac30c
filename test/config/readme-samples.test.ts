// The config samples beside the code (each sink's and the source's README) are what the schemas
// accept: a sample a user copies must load. A block may hold a service config part and, after a
// `# rules.yaml` line, a rules part; both are checked (rules compiled, so templates and levels too).
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import { parse } from 'yaml';
import { compileRules } from '../../src/config/load.ts';
import { rulesFile } from '../../src/config/rules-schema.ts';
import { serviceConfig } from '../../src/config/service-schema.ts';

const root = join(import.meta.dirname, '../..');
const readmes = [
  join(root, 'src/source/README.md'),
  ...readdirSync(join(root, 'src/sinks'), { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => join(root, 'src/sinks', e.name, 'README.md')),
];

test('every sink README and the source README: their YAML samples pass the schemas they document', () => {
  const problems: string[] = [];
  let samples = 0;
  for (const file of readmes) {
    const text = readFileSync(file, 'utf8');
    for (const [, block] of text.matchAll(/```yaml\n([\s\S]*?)```/g)) {
      const [service = '', rules] = (block as string).split(/^# rules\.yaml.*$/m);
      const where = relative(root, file);
      const s = parse(service) as unknown;
      if (s !== null && s !== undefined) {
        samples++;
        const r = serviceConfig.safeParse(s);
        if (!r.success) problems.push(`${where}: service config: ${r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
      }
      if (rules !== undefined) {
        samples++;
        const r = rulesFile.safeParse(parse(rules));
        if (!r.success) problems.push(`${where}: rules: ${r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
        else {
          try {
            compileRules(r.data);
          } catch (err) {
            problems.push(`${where}: rules: ${(err as Error).message}`);
          }
        }
      }
    }
  }
  assert.ok(samples >= 8, `${samples} samples found`);
  assert.deepEqual(problems, []);
});
