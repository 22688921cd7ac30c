// Loads a YAML file against a zod schema. Every error names the file, the line and the path
// ("routes.yaml:14: routes[0].kafka.key: unknown level {devId}; ..."), because an operator
// fixing a config at 3 a.m. should not have to count lines.
import { readFileSync, statSync } from 'node:fs';
import { type Document, isMap, isPair, isScalar, LineCounter, type Node, parseDocument } from 'yaml';
import type { z } from 'zod';

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

export type ConfigPath = ReadonlyArray<string | number | symbol>;

export interface LoadedYaml<T> {
  readonly file: string;
  readonly value: T;
  /** "file:line: path: message" for a problem found after validation (e.g. while compiling rules). */
  error(path: ConfigPath, message: string): ConfigError;
}

/** A config or rules file larger than this is refused before it is parsed. */
export const maxConfigBytes = 4 * 1024 * 1024;
/** YAML aliases expanded at most (a "billion laughs" document expands without bound otherwise). */
const maxAliasCount = 1000;

/** `moved`: keys that moved, old dotted path -> new one (an unknown key found there says where it went). */
export interface YamlOptions {
  readonly moved?: Readonly<Record<string, string>>;
}

export function loadYamlFile<S extends z.ZodType>(
  file: string,
  schema: S,
  env: NodeJS.ProcessEnv = process.env,
  options: YamlOptions = {},
): LoadedYaml<z.output<S>> {
  let text: string;
  try {
    const size = statSync(file).size;
    if (size > maxConfigBytes) throw new ConfigError(`${file}: ${size} bytes is more than a config file may be (${maxConfigBytes} bytes)`);
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError(`${file}: cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return parseYaml(file, text, schema, env, options);
}

export function parseYaml<S extends z.ZodType>(
  file: string,
  text: string,
  schema: S,
  env: NodeJS.ProcessEnv = process.env,
  options: YamlOptions = {},
): LoadedYaml<z.output<S>> {
  const lines = new LineCounter();
  const doc = parseDocument(substituteVariables(file, text, env), { lineCounter: lines, uniqueKeys: true, prettyErrors: false });
  const lineOf = (offset: number | undefined) => (offset === undefined ? 1 : lines.linePos(offset).line);
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    throw new ConfigError(`${file}:${lineOf(e.pos[0])}: ${e.message.split('\n')[0]}`);
  }
  const error = (path: ConfigPath, message: string) =>
    new ConfigError(`${file}:${lineOf(locate(doc, path))}: ${path.length ? `${formatPath(path)}: ` : ''}${message}`);

  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount });
  } catch (err) {
    if (/alias/i.test((err as Error).message)) {
      throw new ConfigError(`${file}: the YAML expands too many aliases (more than ${maxAliasCount}; an alias bomb?): refused`);
    }
    throw new ConfigError(`${file}: ${(err as Error).message.split('\n')[0]}`);
  }
  const result = schema.safeParse(value ?? {});
  if (!result.success && (value === null || value === undefined)) throw new ConfigError(`${file}:1: the file is empty`);
  if (!result.success) {
    const issues = result.error.issues.slice(0, 5).map((issue) => {
      if (issue.code === 'unrecognized_keys') {
        const movedFrom = issue.keys.find((k) => options.moved?.[[...issue.path, k].join('.')]);
        if (movedFrom !== undefined) {
          return error([...issue.path, movedFrom], `moved to ${options.moved?.[[...issue.path, movedFrom].join('.')]} (same meaning): write it there`).message;
        }
        const key = issue.keys[0] as string;
        return error([...issue.path, key], `unknown key${issue.keys.length > 1 ? `s ${issue.keys.join(', ')}` : ''}`).message;
      }
      return error(issue.path, issue.message).message;
    });
    const more = result.error.issues.length > 5 ? `\n(and ${result.error.issues.length - 5} more)` : '';
    throw new ConfigError(issues.join('\n') + more);
  }
  return { file, value: result.data, error };
}

const variable = /\$(\$?)\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

/**
 * `${VAR}` and `${VAR:-default}` anywhere in the text but comments, before it is parsed (the
 * convention of Telegraf and Redpanda Connect): `port: ${PORT}` is a number, `"${PORT}"` a
 * string; `$${VAR}` is a literal `${VAR}`. A value is inserted as text, so one that may hold
 * YAML's own characters belongs in quotes; one with a line break is refused (the lines of
 * errors would shift). An unset or empty variable without a default is an error at its line.
 * A value never appears in an error (it may be a secret).
 */
export function substituteVariables(file: string, text: string, env: NodeJS.ProcessEnv): string {
  if (!text.includes('${')) return text;
  return text
    .split('\n')
    .map((line, index) => {
      if (!line.includes('${')) return line;
      const cut = commentStart(line);
      const body = line.slice(0, cut);
      const replaced = body.replace(variable, (whole: string, escaped: string, name: string, fallback: string | undefined) => {
        if (escaped) return whole.slice(1);
        const value = env[name];
        const chosen = value !== undefined && value !== '' ? value : fallback;
        if (chosen === undefined) throw new ConfigError(`${file}:${index + 1}: \${${name}} is not set and has no default (write \${${name}:-default})`);
        if (/[\r\n]/.test(chosen))
          throw new ConfigError(`${file}:${index + 1}: \${${name}} holds a line break: not substituted (use a { file } secret or a YAML block)`);
        return chosen;
      });
      return replaced + line.slice(cut);
    })
    .join('\n');
}

/** Where a line's comment starts (a # at the start or after a space, outside quotes), or its length. */
function commentStart(line: string): number {
  let quote: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quote) {
      if (c === '\\' && quote === '"') i++;
      else if (c === quote) quote = undefined;
    } else if (c === '"' || c === "'") {
      if (i === 0 || /[\s:[{,-]/.test(line[i - 1] as string)) quote = c;
    } else if (c === '#' && (i === 0 || /\s/.test(line[i - 1] as string))) {
      return i;
    }
  }
  return line.length;
}

/** Offset of the deepest node on the path that exists (a missing key points at its parent). */
function locate(doc: Document, path: ConfigPath): number | undefined {
  let node: unknown = doc.contents;
  let offset = (doc.contents as Node | null)?.range?.[0];
  for (const step of path) {
    if (isMap(node)) {
      const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && p.key.value === step);
      if (!pair) break;
      offset = (pair.key as Node).range?.[0] ?? offset;
      node = pair.value;
      if ((node as Node | null)?.range && !isMap(node) && !(node as { items?: unknown }).items) offset = (node as Node).range![0];
    } else if (node && typeof node === 'object' && 'items' in node && Array.isArray(node.items) && typeof step === 'number') {
      node = node.items[step];
      if (node === undefined) break;
      offset = (node as Node).range?.[0] ?? offset;
    } else {
      break;
    }
  }
  return offset;
}

export function formatPath(path: ConfigPath): string {
  let out = '';
  for (const step of path) {
    if (typeof step === 'number') out += `[${step}]`;
    else out += out === '' ? String(step) : `.${String(step)}`;
  }
  return out;
}
