#!/usr/bin/env -S node --max-semi-space-size=4 --heap-growing-percent=100 --no-allocation-site-pretenuring --no-maglev --no-parallel-scavenge
// The sluice command line: finds the command by its words (src/cli/<command>.ts), parses that
// command's own options (an option it does not declare is an error), runs it, and turns the
// errors users make into one line and an exit code.
import './source/mqtt/quiet-debug.ts'; // first: before anything loads mqtt-packet
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { AuditFatalError } from './audit/log/audit-log.ts';
import { auditCheckProofCommand, auditKeygenCommand, auditProveCommand, auditReplayCommand, auditVerifyCommand } from './cli/audit.ts';
import { checkCommand, configPrintCommand } from './cli/check.ts';
import { type Command, UsageError, usageOf } from './cli/command.ts';
import { configSchemaCommand } from './cli/config-schema.ts';
import { rulesCheckCommand, rulesSchemaCommand, rulesTestCommand } from './cli/rules.ts';
import { runCommand } from './cli/run.ts';
import { simulateCommand } from './cli/simulate.ts';
import { tapCommand } from './cli/tap.ts';
import { ConfigError } from './config/yaml-file.ts';
import { SecretError } from './secrets.ts';

const commands: readonly Command[] = [
  runCommand,
  checkCommand,
  tapCommand,
  configPrintCommand,
  rulesCheckCommand,
  rulesTestCommand,
  rulesSchemaCommand,
  simulateCommand,
  configSchemaCommand,
  auditVerifyCommand,
  auditReplayCommand,
  auditProveCommand,
  auditCheckProofCommand,
  auditKeygenCommand,
];

/** One command's line in a listing: its words and arguments, then what it does. */
function commandLine(c: Command): string {
  return `  ${`${c.name}${c.args ? ` ${c.args}` : ''}`.padEnd(26)} ${c.summary}`;
}

const version = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

const help = `sluice ${version}: drains an MQTT 5 broker into Kafka, InfluxDB, a file and an audit log, acking only what is durable

usage: sluice COMMAND [options]     (sluice COMMAND --help: that command's options)

commands:
${commands.map(commandLine).join('\n')}

environment: SLUICE_CONFIG, SLUICE_RULES, SLUICE_CLIENT_ID (stable per worker), SLUICE_LOG_LEVEL,
and the variables your config names for secrets ({ env: NAME }). Docs: docs/configuration.md, docs/rules.md.`;

async function main(argv: string[]): Promise<number> {
  const words = argv.slice(0, 2);
  const command = commands.find((c) => c.name === words.join(' ')) ?? commands.find((c) => c.name === words[0]);
  if (!command) {
    // `sluice help rules test` is `sluice rules test --help`; `sluice help` the overview
    if (argv[0] === 'help' && argv.length > 1) return main([...argv.slice(1), '--help']);
    if (argv.length === 0 || argv[0] === 'help' || argv[0] === '--help' || argv[0] === '-h') {
      process.stdout.write(`${help}\n`);
      return argv.length === 0 ? 2 : 0;
    }
    // a group's word alone (`sluice audit --help`, `sluice rules`): its commands
    const group = commands.filter((c) => c.name.startsWith(`${argv[0]} `));
    if (group.length > 0) {
      if (!(argv.length === 1 || argv.slice(1).every((a) => a === '--help' || a === '-h'))) {
        throw new UsageError(
          `unknown command "${argv
            .filter((a) => !a.startsWith('-'))
            .slice(0, 2)
            .join(' ')}" (sluice ${argv[0]} --help lists them)`,
        );
      }
      process.stdout.write(
        `usage: sluice ${argv[0]} COMMAND [options]     (sluice ${argv[0]} COMMAND --help: its options)\n\n` + `${group.map(commandLine).join('\n')}\n`,
      );
      return argv.length === 1 ? 2 : 0;
    }
    if (argv[0] === '--version' || argv[0] === '-v' || argv[0] === '-V') {
      process.stdout.write(`${version}\n`);
      return 0;
    }
    throw new UsageError(
      `unknown command "${argv
        .filter((a) => !a.startsWith('-'))
        .slice(0, 2)
        .join(' ')}"`,
    );
  }
  const rest = argv.slice(command.name.split(' ').length);
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: rest, allowPositionals: true, strict: true, options: { ...command.options, help: { type: 'boolean', short: 'h' } } });
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      const option = /'([^']+)'/.exec((err as Error).message)?.[1] ?? 'that option';
      throw new UsageError(`"sluice ${command.name}" does not take ${option} (sluice ${command.name} --help lists its options)`);
    }
    throw err;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(`${usageOf(command)}\n`);
    return 0;
  }
  return command.run({ values, positionals });
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    // kafkajs and mqtt may keep timers; a finished command exits
    setTimeout(() => process.exit(code), 200).unref();
  },
  (err: unknown) => {
    if (err instanceof AuditFatalError) {
      // a log that cannot be written (damaged, locked by another writer, a failed fsync)
      process.stderr.write(`sluice: audit log: ${err.message}\n`);
      process.exit(70);
    }
    if (err instanceof ConfigError || err instanceof SecretError || err instanceof UsageError) {
      process.stderr.write(`sluice: ${err.message}\n${err instanceof UsageError ? 'try sluice --help\n' : ''}`);
      process.exit(err instanceof UsageError ? 2 : 1);
    }
    if ((err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`sluice: ${(err as Error).message}\ntry sluice --help\n`);
      process.exit(2);
    }
    const unreachable = connectionFailure(err);
    if (unreachable) {
      // a server that is not there is the user's setting, not a bug: one line, no stack
      process.stderr.write(`sluice: cannot connect: ${unreachable}\n`);
      process.exit(1);
    }
    process.stderr.write(`sluice: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);

/** "ADDRESS:PORT: CODE" when the error (or one it aggregates or wraps) is a connection that failed. */
function connectionFailure(err: unknown, depth = 0): string | undefined {
  if (!err || typeof err !== 'object' || depth > 4) return undefined;
  const e = err as { code?: unknown; address?: unknown; port?: unknown; hostname?: unknown; errors?: unknown; cause?: unknown };
  if (typeof e.code === 'string' && /^(ECONNREFUSED|ENOTFOUND|EAI_AGAIN|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|ECONNRESET)$/.test(e.code)) {
    const where =
      typeof e.address === 'string' ? `${e.address}${e.port === undefined ? '' : `:${String(e.port)}`}` : typeof e.hostname === 'string' ? e.hostname : '';
    return `${where ? `${where}: ` : ''}${e.code}`;
  }
  for (const inner of [...(Array.isArray(e.errors) ? e.errors : []), e.cause]) {
    const found = connectionFailure(inner, depth + 1);
    if (found) return found;
  }
  return undefined;
}
