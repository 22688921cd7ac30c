#!/usr/bin/env node
// The sluice command line: run a worker, check and try routing rules, print config schemas,
// verify and replay an audit log.
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Kafka, logLevel } from 'kafkajs';
import mqtt from 'mqtt';
import { z } from 'zod';
import { startWorker } from './app.ts';
import { liveWriter } from './audit/audit-log.ts';
import { jsonLinesTarget, kafkaTarget, mqttTarget, parseBound, replay, ReplayRefusedError, type ReplayTarget } from './audit/replay.ts';
import { exitCodes as auditExitCodes, repairTail, verifyAuditLog } from './audit/verify.ts';
import { kafkaSasl, loadConfig, loadRules, resolveSecret } from './config/load.ts';
import { rulesFile } from './config/rules-schema.ts';
import { serviceConfig } from './config/service-schema.ts';
import { ConfigError, loadYamlFile } from './config/yaml-file.ts';
import type { Message } from './message.ts';
import { createLogger } from './observability/logger.ts';
import { writeAuditMetrics } from './observability/textfile-metrics.ts';
import { DeviceSimulator } from './simulator/device-simulator.ts';
import { credentialOptions } from './source/mqtt-source.ts';

const version = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

const help = `sluice ${version}: drains an MQTT 5 broker into Kafka, InfluxDB and an audit log, acking only what is durable

usage:
  sluice run [--config FILE] [--rules FILE]     run a worker (SIGTERM/SIGINT: drain, ack, exit)
  sluice rules check [--rules FILE | --config FILE]
                                               validate a rules file (exit 1 with file:line on error)
  sluice rules test TOPIC PAYLOAD [--rules FILE | --config FILE] [--qos N] [--property K=V]...
                                               show where a message would go, without sending it
  sluice rules schema                          JSON schema of the rules file (for editors)
  sluice simulate [--url URL] [--devices N] [--rate MSG/S] [--command-rate MSG/S] [--bad-ratio R]
                                               a fleet of simulated devices publishing to a broker
  sluice config schema                         JSON schema of the service config file
  sluice audit verify DIR [--public-key FILE] [--repair-tail] [--metrics-file FILE]
                                               check an audit log: frames, CRC-32C, the SHA-256 chain,
                                               sequence, signed checkpoints. Exit 0 ok, 3 torn tail,
                                               4 corrupt frame, 5 chain/sequence broken, 6 signature
  sluice audit replay DIR [--from SEQ|TIME] [--to SEQ|TIME] [--topic FILTER] [--public-key FILE] [--force]
                       [--kafka TOPIC [--brokers HOST:PORT,...]] [--mqtt-prefix PREFIX [--url URL]]
                                               replay recorded commands, in order: JSON lines on stdout
                                               (default), a Kafka topic, or republished under a prefix.
                                               Verifies first and refuses a log that fails (exit as
                                               verify) unless --force; brokers/url default to the config.
                                               --metrics-file (verify, replay): results for node_exporter's
                                               textfile collector
  sluice audit keygen DIR                      an Ed25519 key pair for signed checkpoints

options:
  --config FILE   service config (default: $SLUICE_CONFIG, else config/sluice.yaml)
  --rules FILE    rules file (default: the config's "rules" entry, relative to the config)
  -h, --help      this text
  -v, --version   the version

environment: SLUICE_CONFIG, SLUICE_RULES, SLUICE_CLIENT_ID (stable per worker), and the
variables your config names for secrets ({ env: NAME }). Docs: docs/configuration.md, docs/rules.md.`;

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string' },
      rules: { type: 'string' },
      qos: { type: 'string' },
      property: { type: 'string', multiple: true },
      url: { type: 'string' },
      devices: { type: 'string' },
      rate: { type: 'string' },
      'command-rate': { type: 'string' },
      'bad-ratio': { type: 'string' },
      connections: { type: 'string' },
      'public-key': { type: 'string' },
      'repair-tail': { type: 'boolean' },
      from: { type: 'string' },
      to: { type: 'string' },
      topic: { type: 'string' },
      kafka: { type: 'string' },
      brokers: { type: 'string' },
      'mqtt-prefix': { type: 'string' },
      force: { type: 'boolean' },
      'metrics-file': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
      version: { type: 'boolean', short: 'v' },
    },
  });
  if (values.version) {
    process.stdout.write(`${version}\n`);
    return 0;
  }
  const [command, sub, ...rest] = positionals;
  if (values.help || command === undefined || command === 'help') {
    process.stdout.write(`${help}\n`);
    return command === undefined && !values.help ? 2 : 0;
  }
  const configFile = values.config ?? process.env.SLUICE_CONFIG ?? 'config/sluice.yaml';
  const rulesOverride = values.rules ?? process.env.SLUICE_RULES;
  const rulesOf = () => (rulesOverride !== undefined && values.config === undefined ? loadRules(rulesOverride) : loadConfig(configFile, { rulesFile: rulesOverride }).rules);

  switch (`${command} ${sub ?? ''}`.trim()) {
    case 'run':
      return run(configFile, rulesOverride);
    case 'rules check': {
      const rules = rulesOf();
      process.stdout.write(`ok: ${rules.routeNames.length} route(s) (${rules.routeNames.join(', ')}), ${rules.subscriptions.length} subscription(s)\n`);
      return 0;
    }
    case 'rules test': {
      const [topic, payload] = rest;
      if (topic === undefined || payload === undefined) throw new UsageError('rules test needs TOPIC and PAYLOAD');
      const userProperties: Record<string, string> = {};
      for (const p of values.property ?? []) {
        const eq = p.indexOf('=');
        if (eq < 1) throw new UsageError(`--property takes K=V, got "${p}"`);
        userProperties[p.slice(0, eq)] = p.slice(eq + 1);
      }
      const message: Message = {
        topic,
        payload: Buffer.from(payload),
        qos: values.qos === undefined ? 1 : (Number(values.qos) as 0 | 1 | 2),
        retain: false,
        properties: Object.keys(userProperties).length ? { userProperties } : {},
        receivedAt: Date.now(),
      };
      const routed = rulesOf().route(message);
      const printable = {
        ...routed,
        kafka: routed.kafka.map((k) => ({ ...k, record: { ...k.record, value: k.record.value.toString('utf8') } })),
      };
      process.stdout.write(`${JSON.stringify(printable, (_k, v: unknown) => (Buffer.isBuffer(v) ? v.toString('base64') : v), 2)}\n`);
      return 0;
    }
    case 'rules schema':
      process.stdout.write(`${JSON.stringify(z.toJSONSchema(rulesFile, { io: 'input' }), null, 2)}\n`);
      return 0;
    case 'simulate': {
      const num = (name: string, v: string | undefined, dflt: number) => {
        const n = v === undefined ? dflt : Number(v);
        if (!Number.isFinite(n) || n < 0) throw new UsageError(`--${name} takes a number >= 0, got "${v}"`);
        return n;
      };
      const sim = new DeviceSimulator({
        url: values.url ?? 'mqtt://127.0.0.1:21883',
        org: 'acme',
        devices: Math.max(1, num('devices', values.devices, 1000)),
        rate: num('rate', values.rate, 1000),
        commandRate: num('command-rate', values['command-rate'], 2),
        badRatio: num('bad-ratio', values['bad-ratio'], 0),
        connections: Math.max(1, num('connections', values.connections, 4)),
      });
      await sim.start();
      const report = setInterval(() => process.stderr.write(`simulate: ${JSON.stringify(sim.stats)}\n`), 5_000);
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      clearInterval(report);
      await sim.stop();
      process.stderr.write(`simulate: stopped ${JSON.stringify(sim.stats)}\n`);
      return 0;
    }
    case 'audit verify': {
      const [dir] = rest;
      if (dir === undefined) throw new UsageError('audit verify needs the log directory');
      const publicKey = values['public-key'] === undefined ? undefined : createPublicKey(readFileSync(values['public-key']));
      const writer = liveWriter(dir);
      let result = verifyAuditLog(dir, { publicKey });
      if (result.problem?.kind === 'torn-tail' && values['repair-tail']) {
        if (writer !== undefined) {
          process.stdout.write(`refusing to repair: process ${writer} is writing this log (its last record may be a write in progress); stop it first\n`);
          return auditExitCodes['torn-tail'];
        }
        const cut = repairTail(dir, result.problem);
        process.stdout.write(`repaired: cut ${cut} bytes of a torn last record at ${result.problem.segment} offset ${result.problem.offset}\n`);
        result = verifyAuditLog(dir, { publicKey });
      }
      if (values['metrics-file']) await writeAuditMetrics(values['metrics-file'], 'verify', dir, result);
      const summary = `${result.records} records (${result.commands} commands, ${result.checkpoints} checkpoints) in ${result.segments} segments; last seq ${result.lastSeq}; head ${result.head}`;
      if (result.problem) {
        const p = result.problem;
        process.stdout.write(`FAIL ${p.kind}: ${p.segment} offset ${p.offset}, at seq ${p.seq}: ${p.message}\n` +
          `${p.kind === 'torn-tail' ? (writer !== undefined
            ? `process ${writer} is writing this log: the last record may be a write in progress, not a crash; verify again, or stop the writer first\n`
            : 'a crash cut the last record short; --repair-tail removes exactly that record\n') : ''}checked before it: ${summary}\n`);
        return auditExitCodes[p.kind];
      }
      const unsigned = result.unsignedTail ? `; ${result.unsignedTail} records after the last signed checkpoint` : '';
      process.stdout.write(`ok: ${summary}${publicKey ? `; signatures valid${unsigned}` : '; signatures not checked (no --public-key)'}\n`);
      return 0;
    }
    case 'audit replay': {
      const [dir] = rest;
      if (dir === undefined) throw new UsageError('audit replay needs the log directory');
      if (values.kafka !== undefined && values['mqtt-prefix'] !== undefined) throw new UsageError('replay to --kafka or to --mqtt-prefix, not both');
      const bound = (v: string | undefined, what: string) => {
        if (v === undefined) return undefined;
        try {
          return parseBound(v, what);
        } catch (err) {
          throw new UsageError((err as Error).message);
        }
      };
      const selection = { from: bound(values.from, '--from'), to: bound(values.to, '--to'), topic: values.topic };
      const publicKey = values['public-key'] === undefined ? undefined : createPublicKey(readFileSync(values['public-key']));
      const service = () => loadYamlFile(configFile, serviceConfig).value;
      let target: ReplayTarget;
      let where: string;
      if (values.kafka !== undefined) {
        const k = service().kafka;
        const brokers = values.brokers?.split(',') ?? k.brokers;
        const sasl = kafkaSasl(k);
        target = await kafkaTarget(new Kafka({ clientId: 'sluice-replay', brokers, ssl: k.ssl, logLevel: logLevel.NOTHING, ...(sasl ? { sasl } : {}) }), values.kafka);
        where = `Kafka topic ${values.kafka}`;
      } else if (values['mqtt-prefix'] !== undefined) {
        const m = service().mqtt;
        const url = values.url ?? m.url;
        const client = await mqtt.connectAsync(url, {
          protocolVersion: 5, clientId: `sluice-replay-${process.pid}`, reconnectPeriod: 0,
          ...credentialOptions({ username: m.username, password: m.password && resolveSecret(m.password, 'mqtt.password'), tls: m.tls }),
        });
        target = mqttTarget(client, values['mqtt-prefix']);
        where = `${url} under ${values['mqtt-prefix']}/`;
      } else {
        target = jsonLinesTarget(process.stdout);
        where = 'stdout';
      }
      const tty = process.stderr.isTTY === true;
      const started = Date.now();
      let lastDraw = 0;
      const progress = (read: number, replayed: number, total: number, final = false) => {
        const now = Date.now();
        if (!tty || (!final && now - lastDraw < 100)) return;
        lastDraw = now;
        const rate = read / Math.max(0.001, (now - started) / 1000);
        const width = 30;
        const filled = Math.min(width, Math.round((width * read) / Math.max(1, total)));
        process.stderr.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${read}/${total} commands read, ${replayed} replayed, ${rate.toFixed(0)}/s `);
      };
      try {
        const r = await replay(dir, target, { ...selection, publicKey, force: values.force === true, onProgress: progress });
        if (values['metrics-file']) await writeAuditMetrics(values['metrics-file'], 'replay', dir, r.verify, r.replayed);
        progress(r.replayed + r.skipped, r.replayed, r.replayed + r.skipped, true);
        if (tty) process.stderr.write('\n');
        const secs = (Date.now() - started) / 1000;
        const forced = r.forcedPast ? `; FORCED past ${r.forcedPast.kind} at ${r.forcedPast.segment} offset ${r.forcedPast.offset}, seq ${r.forcedPast.seq}: ${r.forcedPast.message}` : '';
        if (tty || where !== 'stdout') process.stderr.write(`replayed ${r.replayed} commands to ${where} (${r.skipped} outside the selection) in ${secs.toFixed(1)} s${forced}\n`);
        return r.forcedPast ? auditExitCodes[r.forcedPast.kind] : 0;
      } catch (err) {
        if (err instanceof ReplayRefusedError) {
          if (values['metrics-file']) await writeAuditMetrics(values['metrics-file'], 'replay', dir, err.verify, 0);
          process.stderr.write(`sluice: ${err.message}\n`);
          return auditExitCodes[err.verify.problem?.kind ?? 'corrupt'];
        }
        throw err;
      } finally {
        await target.close();
      }
    }
    case 'audit keygen': {
      const [dir] = rest;
      if (dir === undefined) throw new UsageError('audit keygen needs a directory for the key files');
      const { privateKey, publicKey } = generateKeyPairSync('ed25519');
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'audit-signing.key'), privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
      writeFileSync(join(dir, 'audit-signing.pub'), publicKey.export({ type: 'spki', format: 'pem' }));
      process.stdout.write(`wrote ${join(dir, 'audit-signing.key')} (keep it secret) and ${join(dir, 'audit-signing.pub')} (for verify --public-key)\n`);
      return 0;
    }
    case 'config schema':
      process.stdout.write(`${JSON.stringify(z.toJSONSchema(serviceConfig, { io: 'input' }), null, 2)}\n`);
      return 0;
    default:
      throw new UsageError(`unknown command "${positionals.join(' ')}"`);
  }
}

async function run(configFile: string, rulesFile: string | undefined): Promise<number> {
  const config = loadConfig(configFile, { rulesFile });
  const log = createLogger(process.env.SLUICE_LOG_LEVEL ?? config.service.log.level);
  const aborted = new AbortController();
  let stopping: Promise<number> | undefined;
  let worker: Awaited<ReturnType<typeof startWorker>> | undefined;
  const done = Promise.withResolvers<number>();
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      log.warn({ signal }, 'second signal: exiting now; unacked messages will be redelivered');
      process.exit(130);
    }
    log.info({ signal }, 'signal received');
    aborted.abort();
    stopping = worker ? worker.stop().then((unsettled) => (unsettled > 0 ? 1 : 0)) : Promise.resolve(0);
    stopping.then(done.resolve, done.reject);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  try {
    worker = await startWorker(config, log, {
      signal: aborted.signal,
      // a failed audit write or fsync: stop at once, ack nothing more (DESIGN.md: never retried)
      onFatal: () => {
        log.flush();
        process.exit(70);
      },
    });
  } catch (err) {
    if (aborted.signal.aborted) return 0;
    throw err;
  }
  if (aborted.signal.aborted && !stopping) onSignal('SIGTERM');
  const code = await done.promise;
  log.flush();
  return code;
}

class UsageError extends Error {}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    // kafkajs and mqtt may keep timers; a finished command exits
    setTimeout(() => process.exit(code), 200).unref();
  },
  (err: unknown) => {
    if (err instanceof Error && err.name === 'AuditFatalError') {
      // a log that cannot be written (damaged, locked by another writer, a failed fsync)
      process.stderr.write(`sluice: audit log: ${err.message}\n`);
      process.exit(70);
    }
    if (err instanceof ConfigError || err instanceof UsageError) {
      process.stderr.write(`sluice: ${err.message}\n${err instanceof UsageError ? 'try sluice --help\n' : ''}`);
      process.exit(err instanceof UsageError ? 2 : 1);
    }
    if ((err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`sluice: ${(err as Error).message}\ntry sluice --help\n`);
      process.exit(2);
    }
    process.stderr.write(`sluice: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
