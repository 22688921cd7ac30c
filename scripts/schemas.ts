// `npm run schemas`: writes the JSON schemas (schemas/) and the generated reference
// (docs/reference.md) from the zod schemas, and the Helm chart's values.schema.json. test/config/schemas.test.ts checks they are current.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../deploy/local/stack-config.ts';
import { helmValuesSchema, jsonText, referenceMarkdown, rulesJsonSchema, serviceJsonSchema } from '../src/config/reference.ts';

mkdirSync(join(repoRoot, 'schemas'), { recursive: true });
writeFileSync(join(repoRoot, 'schemas/sluice.schema.json'), jsonText(serviceJsonSchema()));
writeFileSync(join(repoRoot, 'schemas/rules.schema.json'), jsonText(rulesJsonSchema()));
writeFileSync(join(repoRoot, 'docs/reference.md'), referenceMarkdown());
writeFileSync(join(repoRoot, 'deploy/helm/sluice/values.schema.json'), jsonText(helmValuesSchema()));
process.stdout.write('wrote schemas/sluice.schema.json, schemas/rules.schema.json, docs/reference.md, deploy/helm/sluice/values.schema.json\n');
