// Reads the service config and its rules file, compiles the rules (each sink compiling its own
// part, from the sink registry), resolves relative paths and checks every secret. Every
// failure is a ConfigError naming the file and line; no secret value ever enters a message.
import { hostname } from 'node:os';
import { dirname, resolve } from 'node:path';
import type { MqttCredentials } from '../mqtt-credentials.ts';
import { RuleError, RuleSet, type RulesSpec } from '../router/rule-set.ts';
import { resolveSecret, SecretError, type SecretRef } from '../secrets.ts';
import { sectionKey } from '../sinks/plugin.ts';
import { sinkPlugins } from '../sinks/registry.ts';
import { type RulesFile, rulesFile } from './rules-schema.ts';
import { movedServiceKeys, type ServiceConfig, serviceConfig } from './service-schema.ts';
import { ConfigError, formatPath, loadYamlFile } from './yaml-file.ts';

export interface LoadedConfig {
  readonly configFile: string;
  readonly rulesFile: string;
  readonly service: ServiceConfig;
  readonly rules: RuleSet;
  readonly clientId: string;
}

const compilers = sinkPlugins.flatMap((p) => (p.route ? [p.route.compiler] : []));

/** Compiles a validated rules file with every sink's compiler (a RuleError names the path). */
export function compileRules(spec: RulesFile, baseDir?: string): RuleSet {
  return new RuleSet(spec as RulesSpec, compilers, baseDir);
}

export function loadRules(file: string, env: NodeJS.ProcessEnv = process.env): RuleSet {
  const loaded = loadYamlFile(file, rulesFile, env);
  try {
    return compileRules(loaded.value, dirname(resolve(file)));
  } catch (err) {
    if (err instanceof RuleError) throw loaded.error(err.path, err.message);
    throw err;
  }
}

/**
 * `resolveSecrets: false` checks the secret references' shape only, without reading them (the
 * offline checks: a production config linted where its secrets are not).
 */
export function loadConfig(
  configFile: string,
  options: { rulesFile?: string | undefined; env?: NodeJS.ProcessEnv; resolveSecrets?: boolean } = {},
): LoadedConfig {
  const env = options.env ?? process.env;
  const loaded = loadYamlFile(configFile, serviceConfig, env, { moved: movedServiceKeys });
  const service = loaded.value as ServiceConfig;
  const rulesPath = options.rulesFile ?? resolve(dirname(configFile), service.rules);
  const rules = loadRules(rulesPath, env);
  const sections = service as Record<string, unknown>;
  for (const plugin of sinkPlugins) {
    const section = sections[sectionKey(plugin)] as Record<string, unknown> | undefined;
    if (plugin.config && section === undefined && rules.uses(plugin.name)) {
      const routes = [...rules.sinksByRoute].filter(([, sinks]) => sinks.includes(plugin.name)).map(([route]) => `"${route}"`);
      const what = plugin.route?.uses ?? `writes to ${plugin.name}`;
      throw loaded.error(
        [],
        `route${routes.length > 1 ? 's' : ''} ${routes.join(', ')} in ${rulesPath} ${routes.length > 1 ? what.replace('has', 'have').replace('writes', 'write') : what} but this file has no ${plugin.name} section${plugin.paths ? ` (${plugin.name}.${plugin.paths[0]})` : ''}`,
      );
    }
    for (const key of plugin.paths ?? []) {
      // a dotted key is a path in a nested object (audit.anchors.file)
      const parts = key.split('.');
      const holder = parts.slice(0, -1).reduce<Record<string, unknown> | undefined>((o, k) => o?.[k] as Record<string, unknown> | undefined, section);
      const last = parts.at(-1) as string;
      if (holder && typeof holder[last] === 'string') holder[last] = resolve(dirname(configFile), holder[last]);
    }
  }
  for (const need of rules.requirements) {
    const section = sections[need.sink] as Record<string, unknown> | undefined;
    if (section?.[need.key] === undefined) throw loaded.error([need.sink], `route "${need.route}" in ${rulesPath} needs ${need.sink}.${need.key} in this file`);
  }
  service.sparkplug.stateDir = resolve(dirname(configFile), service.sparkplug.stateDir);
  // Fail at start, not at first connect, when a secret is missing.
  for (const [path, ref] of options.resolveSecrets === false ? [] : secretRefs(service)) {
    const where = formatPath(path);
    try {
      resolveSecret(ref, where, env);
    } catch (err) {
      // file:line: path: what is missing (resolveSecret's message starts with `where: `)
      if (err instanceof SecretError) throw loaded.error(path, err.message.slice(where.length + 2));
      throw err;
    }
  }
  const clientId = env.SLUICE_CLIENT_ID || service.mqtt.clientId || `sluice-${hostname()}`;
  return { configFile, rulesFile: rulesPath, service, rules, clientId };
}

/** Every { env } / { file } secret reference in the config, with its path. */
function* secretRefs(value: unknown, path: Array<string | number> = []): Generator<[Array<string | number>, SecretRef]> {
  if (value === null || typeof value !== 'object') return;
  const keys = Object.keys(value);
  const v = value as Record<string, unknown>;
  if (keys.length === 1 && (keys[0] === 'env' || keys[0] === 'file') && typeof v[keys[0]] === 'string') {
    yield [path, value as SecretRef];
    return;
  }
  for (const k of keys) yield* secretRefs(v[k], [...path, Array.isArray(value) ? Number(k) : k]);
}

/** A secret from the config, resolved now; a missing one is a ConfigError naming where it was looked for. */
export function secretOf(ref: SecretRef, what: string, env: NodeJS.ProcessEnv = process.env): string {
  try {
    return resolveSecret(ref, what, env);
  } catch (err) {
    if (err instanceof SecretError) throw new ConfigError(err.message);
    throw err;
  }
}

/** The broker login of the mqtt section, its password resolved now (every MQTT connection sluice makes uses it). */
export function mqttCredentialsOf(service: ServiceConfig): MqttCredentials {
  const m = service.mqtt;
  return { username: m.username, password: m.password && secretOf(m.password, 'mqtt.password'), tls: m.tls };
}
