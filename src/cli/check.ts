// sluice check: the service config and its rules validated together, offline (secret
// references checked for shape, not read), with the warnings a reader would want before
// deploying; --connect also reaches each server with the config's credentials, writing nothing.
// sluice config print: the effective config, defaults filled in.
import type mqtt from 'mqtt';
import { stringify } from 'yaml';
import { type LoadedConfig, loadConfig } from '../config/load.ts';
import { type Probe, sectionKey } from '../sinks/plugin.ts';
import { sinkPlugins } from '../sinks/registry.ts';
import { type Command, configFileOf, configHelp, configOptions, flag, numberOption, type Parsed, rulesOverrideOf, UsageError } from './command.ts';
import { connectOwnSession } from './own-session.ts';
import { ruleWarnings } from './rules.ts';

function loaded(values: Parsed['values'], positionals: readonly string[], resolveSecrets: boolean): LoadedConfig {
  if (positionals.length > 2) throw new UsageError(`takes a config file and a rules file at most, got ${positionals.length}: ${positionals.join(' ')}`);
  const [config, rules] = positionals;
  if (config !== undefined && values.config !== undefined) throw new UsageError('name the config as the argument or with --config, not both');
  if (rules !== undefined && values.rules !== undefined) throw new UsageError('name the rules file as the argument or with --rules, not both');
  return loadConfig(config ?? configFileOf(values), { rulesFile: rules ?? rulesOverrideOf(values), resolveSecrets });
}

/** The plugins this config builds: the sinks its routes use, and those always built. */
function builtPlugins(c: LoadedConfig) {
  return sinkPlugins.filter((p) => p.always || c.rules.uses(p.name));
}

export const checkCommand: Command = {
  name: 'check',
  args: '[CONFIG [RULES]]',
  summary: 'validate the config and its rules together, offline; --connect also tries each server',
  notes:
    'Without --connect no secret is read (their references are checked for shape): a production config can be checked in CI.\n' +
    'exit codes: 0 valid, 1 invalid (file:line) or a warning with --strict, 3 --connect: a server unreachable or refusing, 2 usage',
  options: { ...configOptions, strict: { type: 'boolean' }, connect: { type: 'boolean' }, timeout: { type: 'string' } },
  help: {
    ...configHelp,
    strict: 'exit 1 on a warning too (a route no subscription covers, a route an earlier one shadows)',
    connect: "also connect to the broker, Kafka and InfluxDB with the config's credentials (reads the secrets; writes nothing, joins no share group)",
    timeout: 'milliseconds each server has to answer with --connect (default 10000)',
  },
  async run({ values, positionals }) {
    const connect = flag(values, 'connect');
    const timeoutMs = numberOption(values, 'timeout', 10_000, 100);
    const c = loaded(values, positionals, connect);
    const warnings = ruleWarnings(c.rules);
    const plugins = builtPlugins(c);
    const out = process.stdout;
    out.write(`config  ${c.configFile}\n`);
    out.write(
      `rules   ${c.rulesFile}: ${c.rules.routeNames.length} route(s) (${c.rules.routeNames.join(', ')}), ${c.rules.subscriptions.length} subscription(s)\n`,
    );
    out.write(`sinks   ${plugins.map((p) => (p.name === 'dead-letter' ? `dead letter (${deadLetterTo(c)})` : p.name)).join(', ')}\n`);
    for (const w of warnings) process.stderr.write(`warning: ${w}\n`);
    let failed = 0;
    if (connect) {
      const probes: Array<[string, Promise<Probe>]> = [['mqtt', probeMqtt(c, timeoutMs)]];
      const sections = c.service as Record<string, unknown>;
      for (const p of plugins) {
        if (!p.probe) continue;
        probes.push([
          p.name,
          p
            .probe({ section: sections[sectionKey(p)], sections, destinations: c.rules.destinations(p.name), timeoutMs })
            .catch((err: unknown) => ({ ok: false, detail: (err as Error).message })),
        ]);
      }
      for (const [name, probe] of probes) {
        const r = await probe;
        if (!r.ok) failed++;
        out.write(`${name.padEnd(12)} ${r.ok ? 'ok  ' : 'FAIL'}  ${r.detail}\n`);
      }
    }
    out.write(`${failed ? `FAIL: ${failed} server(s) not usable` : 'ok'}${warnings.length ? `, ${warnings.length} warning(s)` : ''}\n`);
    if (failed) return 3;
    return warnings.length > 0 && flag(values, 'strict') ? 1 : 0;
  },
};

function deadLetterTo(c: LoadedConfig): string {
  const d = c.service.deadLetter as { to: string; path?: string; topic: string };
  if (d.to === 'file') return `file ${d.path}`;
  if (d.to === 'hold') return 'hold';
  return `kafka topic ${d.topic}`;
}

/**
 * The broker with the config's credentials, on a clean session of its own (`<clientId>-check`,
 * never the share group), and each subscription filter tried without the share prefix (retained
 * messages not sent): the broker's SUBACK says whether this user may subscribe to it.
 */
async function probeMqtt(c: LoadedConfig, timeoutMs: number): Promise<Probe> {
  const m = c.service.mqtt;
  const clientId = `${c.clientId}-check`;
  let client: mqtt.MqttClient | undefined;
  try {
    client = await connectOwnSession(c, clientId, timeoutMs);
    const filters = c.rules.subscriptions;
    const granted =
      filters.length === 0
        ? []
        : await client.subscribeAsync(
            filters.map((s) => s.filter),
            { qos: 0, rh: 2 },
          );
    const refused = granted.filter((g) => g.qos >= 0x80);
    if (filters.length > 0) await client.unsubscribeAsync(filters.map((s) => s.filter)).catch(() => {});
    const detail = `${m.url}: connected as ${clientId} (a clean session outside the share group)`;
    if (refused.length > 0)
      return {
        ok: false,
        detail: `${detail}; subscribing refused (not authorised?): ${refused.map((g) => `${g.topic} (reason 0x${g.qos.toString(16)})`).join(', ')}`,
      };
    return { ok: true, detail: `${detail}; may subscribe to ${filters.map((s) => s.filter).join(', ') || 'nothing (no subscriptions)'}` };
  } catch (err) {
    const e = err as Error & { code?: string | number };
    return { ok: false, detail: `${m.url}: ${e.message || String(e.code)}` };
  } finally {
    await client?.endAsync(true).catch(() => {});
  }
}

export const configPrintCommand: Command = {
  name: 'config print',
  args: '[CONFIG]',
  summary: 'the effective config: every default filled in, paths resolved, secrets as their references',
  options: { ...configOptions },
  help: { ...configHelp },
  async run({ values, positionals }) {
    const c = loaded(values, positionals, false);
    process.stdout.write(
      `# effective config of ${c.configFile} (rules: ${c.rulesFile}; client id: ${c.clientId})\n` +
        '# secrets appear as their references ({ env } or { file }), never their values\n',
    );
    process.stdout.write(stringify({ ...c.service, rules: c.rulesFile }, { lineWidth: 0 }));
    return 0;
  },
};
