// Apache ActiveMQ Artemis 2.40 (Apache-2.0; the `bin` tar.gz from Maven Central, unpacked once)
// as a primary/backup pair with replication: the broker HA pair of the failover tests. Each
// instance is made with `artemis create` (clustered, replicated, a static connector to the
// other, an MQTT acceptor, anonymous access) into a directory of the caller's, on loopback
// ports of the caller's. The backup copies the primary's journal as it is written (sessions,
// subscriptions, messages) and becomes active when the primary is gone.
import { existsSync, mkdirSync, readFileSync, realpathSync, statfsSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { LaunchSpec } from '../daemon.ts';
import { mavenUnpacked } from '../maven.ts';
import { findJava, PrerequisiteError, runCommand } from '../prerequisites.ts';

export const artemisVersion = '2.40.0';

/** The distribution in the cache (~70 MB, once per machine); its `bin/artemis`. */
export async function artemisDist(cacheDir: string): Promise<string> {
  const home = join(cacheDir, `apache-artemis-${artemisVersion}`);
  await mavenUnpacked(home, `org.apache.activemq:apache-artemis:${artemisVersion}:tar.gz:bin`, `ActiveMQ Artemis ${artemisVersion}`);
  const bin = join(home, `apache-artemis-${artemisVersion}`, 'bin', 'artemis');
  if (!existsSync(bin)) throw new PrerequisiteError(`the Artemis distribution in ${home} has no bin/artemis`);
  return bin;
}

export interface ArtemisNode {
  readonly name: 'primary' | 'backup';
  readonly dir: string;
  /** The core protocol port (replication and the cluster connection) and the MQTT port. */
  readonly corePort: number;
  readonly mqttPort: number;
}

/** A JAVA_HOME for the artemis script: from the Java 17+ found where the stack looks. */
function javaHome(): string {
  return dirname(dirname(realpathSync(findJava(17, `ActiveMQ Artemis ${artemisVersion}`))));
}

/** Creates both instances (`artemis create`), each pointing at the other; returns how to run each. */
export async function createArtemisPair(
  bin: string,
  host: string,
  primary: ArtemisNode,
  backup: ArtemisNode,
): Promise<Record<'primary' | 'backup', LaunchSpec>> {
  const env = { ...process.env, JAVA_HOME: javaHome() };
  warnIfDiskNearlyFull(dirname(primary.dir));
  // the ports `artemis create` writes (offsets 0 and 100), replaced by the caller's afterwards
  const defaults = { primaryCore: 61616, backupCore: 61716, primaryMqtt: 1883, backupMqtt: 1983 };
  for (const node of [primary, backup]) {
    const other = node === primary ? defaults.backupCore : defaults.primaryCore;
    const out = await runCommand(
      bin,
      [
        'create',
        node.dir,
        '--name',
        node.name,
        '--host',
        host,
        '--replicated',
        '--clustered',
        '--cluster-user',
        'sluice-cluster',
        '--cluster-password',
        'sluice-cluster',
        '--staticCluster',
        `tcp://${host}:${other}`,
        '--allow-anonymous',
        '--user',
        'admin',
        '--password',
        'admin',
        '--no-web',
        '--no-autotune',
        '--nio',
        '--no-amqp-acceptor',
        '--no-hornetq-acceptor',
        '--no-stomp-acceptor',
        '--failover-on-shutdown',
        '--silent',
        '--force',
        ...(node === backup ? ['--backup', '--port-offset', '100'] : []),
      ],
      env,
    );
    if (out.status !== 0) throw new Error(`artemis create ${node.name} failed:\n${out.output.trim().split('\n').slice(-10).join('\n')}`);
    const xml = join(node.dir, 'etc', 'broker.xml');
    const ports: Array<[number, number]> = [
      [defaults.primaryCore, primary.corePort],
      [defaults.backupCore, backup.corePort],
      [defaults.primaryMqtt, primary.mqttPort],
      [defaults.backupMqtt, backup.mqttPort],
    ];
    let text = readFileSync(xml, 'utf8');
    for (const [from, to] of ports) text = text.replaceAll(`${host}:${from}`, `${host}:${to}`);
    writeFileSync(xml, text);
  }
  const launch = (node: ArtemisNode): LaunchSpec => ({
    command: join(node.dir, 'bin', 'artemis'),
    args: ['run'],
    cwd: node.dir,
    // a small heap: two brokers beside the stack on a 2-core machine (the default asks for 2 GiB)
    env: { ...env, JAVA_ARGS: '-Xms64m -Xmx384m -XX:+UseG1GC -Dlog4j2.disableJmx=true --add-opens java.base/jdk.internal.misc=ALL-UNNAMED' },
  });
  return { primary: launch(primary), backup: launch(backup) };
}

/**
 * Artemis blocks every producer once its disk is fuller than max-disk-usage (90% by default):
 * publishers then see completed publishes that never reach a subscriber, and the failover tests
 * fail as lost commands. Said up front, so that a full development disk is not read as a bug.
 */
function warnIfDiskNearlyFull(dir: string): void {
  mkdirSync(dir, { recursive: true });
  // Artemis' own measure: 1 - usable / total space (df's Use% can be far lower on a volume with reserved space)
  const fs = statfsSync(dir);
  const used = 1 - fs.bavail / fs.blocks;
  const gb = (blocks: number) => ((blocks * fs.bsize) / 1e9).toFixed(1);
  if (used >= 0.85)
    process.stderr.write(
      `stack: warning: ${gb(fs.bavail)} GB of ${gb(fs.blocks)} GB is free on the disk holding ${dir} (${(used * 100).toFixed(0)}% used by ActiveMQ Artemis' measure); Artemis blocks producers above 90% (max-disk-usage), and its tests then fail\n`,
    );
}
