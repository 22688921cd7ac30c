// HiveMQ Community Edition (embedded artifact from Maven Central, deploy/local/hivemq/pom.xml),
// the stack's second MQTT 5 broker: sessions and queues persisted to disk, loopback only. The
// broker-fault tests start private instances of it through hivemqLaunch().
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { LaunchSpec } from '../daemon.ts';
import { mavenJars, mavenJarsDir } from '../maven.ts';
import { requireJava } from '../prerequisites.ts';
import type { StackConfig } from '../stack-config.ts';
import { renderTemplate } from '../template.ts';
import type { LocalServer } from './local-server.ts';
import { mqttProbe } from './mqtt-probe.ts';

const marker = 'HiveMQLauncher';

const pomOf = (config: StackConfig) => join(config.repoRoot, 'deploy/local/hivemq/pom.xml');
const jarsName = 'hivemq-ce-2025.5';

/** The jars, fetched once (the stack's prepare and the tests' private brokers share them). */
export function hivemqJars(config: StackConfig): Promise<string> {
  return mavenJars(config.cacheDir, jarsName, pomOf(config), 'HiveMQ CE 2025.5');
}

/**
 * How to run a HiveMQ whose config and data live in `dir`, listening on host:port. The jars
 * must be fetched (hivemqJars) before.
 */
export function hivemqLaunch(config: StackConfig, at: { dir: string; host: string; port: number }): LaunchSpec {
  const confDir = join(at.dir, 'conf');
  const dataDir = join(at.dir, 'data');
  mkdirSync(dataDir, { recursive: true });
  renderTemplate(join(config.repoRoot, 'deploy/local/hivemq/config.xml.template'), join(confDir, 'config.xml'), { host: at.host, port: at.port });
  const libs = mavenJarsDir(config.cacheDir, jarsName, pomOf(config));
  return {
    command: requireJava(17, 'HiveMQ'),
    args: [
      '-Xms128m',
      '-Xmx384m',
      '-XX:+UseG1GC',
      '-XX:MaxGCPauseMillis=20',
      '-Djava.awt.headless=true',
      // HiveMQ's persistence (Xodus, RocksDB) uses direct and off-heap memory
      '-XX:+CrashOnOutOfMemoryError',
      '-cp',
      `${libs}/*`,
      join(config.repoRoot, 'deploy/local/hivemq/HiveMQLauncher.java'),
      confDir,
      dataDir,
    ],
    cwd: at.dir,
  };
}

export function hivemqServer(config: StackConfig): LocalServer {
  const dir = join(config.runDir, 'hivemq');
  return {
    name: 'hivemq',
    files: { pidFile: join(dir, 'hivemq.pid'), logFile: join(dir, 'hivemq.log'), marker },
    ports: [{ port: config.hivemq.port, variable: 'SLUICE_HIVEMQ_PORT' }],
    startTimeoutMs: 90_000,
    debianPackages: [],

    async prepare() {
      requireJava(17, 'HiveMQ');
      await hivemqJars(config);
    },

    launchSpec() {
      return hivemqLaunch(config, { dir, host: config.host, port: config.hivemq.port });
    },

    probe() {
      return mqttProbe(config.host, config.hivemq.port);
    },

    endpoints() {
      return [`mqtt://${config.host}:${config.hivemq.port} (HiveMQ CE 2025.5, anonymous)`];
    },
  };
}
