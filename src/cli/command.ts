// What every command of the CLI is: its words, its own options and help, and run(). A flag a
// command does not declare is an error (node:util parseArgs in strict mode), never ignored.
import type { ParseArgsConfig } from 'node:util';

export type Options = NonNullable<ParseArgsConfig['options']>;

export interface Parsed {
  readonly values: Readonly<Record<string, string | boolean | Array<string | boolean> | undefined>>;
  readonly positionals: readonly string[];
}

export interface Command {
  /** The words that name it: "run", "audit verify". */
  readonly name: string;
  /** One line: what it does. */
  readonly summary: string;
  /** Arguments after the name, as shown in the usage line. */
  readonly args?: string;
  /** Its options, with a line of help each. */
  readonly options: Options;
  readonly help: Readonly<Record<string, string>>;
  /** Free text after the options (exit codes, examples). */
  readonly notes?: string;
  run(parsed: Parsed): Promise<number>;
}

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** The options every command reading a config takes. */
export const configOptions = {
  config: { type: 'string' },
  rules: { type: 'string' },
} as const satisfies Options;

export const configHelp = {
  config: 'service config (default: $SLUICE_CONFIG, else config/sluice.yaml)',
  rules: 'rules file (default: $SLUICE_RULES, else the config\'s "rules" entry, relative to the config)',
};

export function configFileOf(values: Parsed['values']): string {
  return (values.config as string | undefined) ?? (process.env.SLUICE_CONFIG || 'config/sluice.yaml'); // set but empty: unset
}

export function rulesOverrideOf(values: Parsed['values']): string | undefined {
  return (values.rules as string | undefined) ?? (process.env.SLUICE_RULES || undefined); // set but empty: unset
}

/** A number option: a clear usage error when it is not one. */
export function numberOption(values: Parsed['values'], name: string, dflt: number, min = 0): number {
  const v = values[name] as string | undefined;
  const n = v === undefined ? dflt : Number(v);
  if (!Number.isFinite(n) || n < min) throw new UsageError(`--${name} takes a number >= ${min}, got "${v}"`);
  return n;
}

export function usageOf(command: Command): string {
  const flags = Object.entries(command.options).map(([name, o]) => {
    const flag = `${o.short ? `-${o.short}, ` : ''}--${name}${o.type === 'string' ? ` ${name === 'config' || name === 'rules' || name.endsWith('file') || name.endsWith('key') ? 'FILE' : 'VALUE'}` : ''}`;
    return `  ${flag.padEnd(28)} ${command.help[name] ?? ''}${o.multiple ? ' (repeatable)' : ''}`;
  });
  return [
    `usage: sluice ${command.name}${command.args ? ` ${command.args}` : ''} [options]`,
    '',
    command.summary,
    '',
    'options:',
    ...flags,
    '  -h, --help                   this text',
    ...(command.notes ? ['', command.notes] : []),
  ].join('\n');
}

/** A string option's value. */
export function str(values: Parsed['values'], name: string): string | undefined {
  const v = values[name];
  return typeof v === 'string' ? v : undefined;
}

/** A boolean option: true only when given. */
export function flag(values: Parsed['values'], name: string): boolean {
  return values[name] === true;
}
