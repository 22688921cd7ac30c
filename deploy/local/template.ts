// Renders the stack's config templates: `{{name}}` placeholders, every one must be given.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

export function renderTemplate(templateFile: string, outFile: string, vars: Record<string, string | number>): void {
  const text = readFileSync(templateFile, 'utf8').replace(/\{\{(\w+)\}\}/g, (_, name: string) => {
    const value = vars[name];
    if (value === undefined) throw new Error(`${templateFile}: no value for {{${name}}}`);
    return String(value);
  });
  mkdirSync(dirname(outFile), { recursive: true });
  writeFileSync(outFile, text);
}
