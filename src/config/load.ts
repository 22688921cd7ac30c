// Reads the service config and its rules file, compiles the rules, resolves secrets. Every
// failure is a ConfigError naming the file and line; no secret value ever enters a message.
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import type { SASLOptions } from 'kafkajs';
import { dirname, resolve } from 'node:path';
import { RuleError, RuleSet } from '../router/rule-set.ts';
import { rulesFile } from './rules-schema.ts';
import { serviceConfig, type SecretRef, type ServiceConfig } from './service-schema.ts';
import { ConfigError, loadYamlFile } from './yaml-file.ts';

export interface LoadedConfig {
  readonly configFile: string;
  readonly rulesFile: string;
  readonly service: ServiceConfig;
  readonly rules: RuleSet;
  readonly clientId: string;
}

export function loadRules(file: string): RuleSet {
  const loaded = loadYamlFile(file, rulesFile);
  try {
    return new RuleSet(loaded.value);
  } catch (err) {
    if (err instanceof RuleError) throw loaded.error(err.path, err.message);
    throw err;
  }
}

export function loadConfig(configFile: string, options: { rulesFile?: string | undefined; env?: NodeJS.ProcessEnv } = {}): LoadedConfig {
  const env = options.env ?? process.env;
  const loaded = loadYamlFile(configFile, serviceConfig);
  const service = loaded.value;
  const rulesPath = options.rulesFile ?? resolve(dirname(configFile), service.rules);
  const rules = loadRules(rulesPath);
  if (!service.influx && rules.usesInflux) {
    throw loaded.error([], `a route in ${rulesPath} writes to influx but this file has no influx section`);
  }
  if (!service.audit && rules.usesAudit) {
    throw loaded.error([], `a route in ${rulesPath} has audit: true but this file has no audit section (audit.dir)`);
  }
  if (service.audit) service.audit.dir = resolve(dirname(configFile), service.audit.dir);
  // Fail at start, not at first connect, when a secret is missing.
  if (service.mqtt.password) resolveSecret(service.mqtt.password, `${configFile}: mqtt.password`, env);
  if (service.kafka.sasl) resolveSecret(service.kafka.sasl.password, `${configFile}: kafka.sasl.password`, env);
  if (service.influx?.token) resolveSecret(service.influx.token, `${configFile}: influx.token`, env);
  if (service.audit?.signing) resolveSecret(service.audit.signing.privateKey, `${configFile}: audit.signing.privateKey`, env);
  const clientId = env.SLUICE_CLIENT_ID || service.mqtt.clientId || `sluice-${hostname()}`;
  return { configFile, rulesFile: rulesPath, service, rules, clientId };
}

/** The Kafka SASL settings as kafkajs takes them, the password resolved (worker and replay alike). */
export function kafkaSasl(kafka: ServiceConfig['kafka']): SASLOptions | undefined {
  if (!kafka.sasl) return undefined;
  // a union by mechanism, which TypeScript cannot narrow from our enum
  return { mechanism: kafka.sasl.mechanism, username: kafka.sasl.username, password: resolveSecret(kafka.sasl.password, 'kafka.sasl.password') } as SASLOptions;
}

/** The secret's value; an error names where it was looked for, never the value. */
export function resolveSecret(ref: SecretRef, what: string, env: NodeJS.ProcessEnv = process.env): string {
  if ('env' in ref) {
    const v = env[ref.env];
    if (v === undefined || v === '') throw new ConfigError(`${what}: environment variable ${ref.env} is not set`);
    return v;
  }
  try {
    return readFileSync(ref.file, 'utf8').replace(/\r?\n$/, '');
  } catch (err) {
    throw new ConfigError(`${what}: cannot read secret file ${ref.file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
}
