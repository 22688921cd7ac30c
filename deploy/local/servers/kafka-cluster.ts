// An optional three-node Apache Kafka cluster in KRaft mode beside the single node (every node a
// broker and a controller; replication 3, min.insync.replicas 2), from the same jars. Not started
// by a plain `stack:up`: `npm run stack:up -- kafka-1 kafka-2 kafka-3`, or by the failover tests.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { requireJava } from '../prerequisites.ts';
import type { StackConfig } from '../stack-config.ts';
import { renderTemplate } from '../template.ts';
import { kafkaJars, kafkaJarsDir, kafkaVersion } from './kafka.ts';
import type { LocalServer } from './local-server.ts';

const mainClass = 'kafka.Kafka';
export const clusterNodeNames = ['kafka-1', 'kafka-2', 'kafka-3'] as const;

/** host:port of each node's broker listener. */
export function clusterBrokers(config: StackConfig): string[] {
  return [0, 1, 2].map((i) => `${config.host}:${config.kafkaCluster.port + i}`);
}

export function kafkaClusterNodes(config: StackConfig): LocalServer[] {
  const clusterDir = join(config.runDir, 'kafka-cluster');
  const pom = join(config.repoRoot, 'deploy/local/kafka/pom.xml');
  const voters = [1, 2, 3].map((id) => `${id}@${config.host}:${config.kafkaCluster.controllerPort + id - 1}`).join(',');
  let java = 'java';
  /** One cluster id for the three (made once, kept with the data). */
  const clusterId = () => {
    const file = join(clusterDir, 'cluster-id');
    if (!existsSync(file)) {
      mkdirSync(clusterDir, { recursive: true });
      // base64url may start with "-", which the tool's parser reads as an option: avoid it
      writeFileSync(file, `A${randomBytes(15).toString('base64url').slice(1)}`);
    }
    return readFileSync(file, 'utf8').trim();
  };
  return [1, 2, 3].map((id): LocalServer => {
    const dir = join(clusterDir, `node-${id}`);
    const dataDir = join(dir, 'data');
    const propsFile = join(dir, 'server.properties');
    const log4jFile = join(dir, 'log4j2.yaml');
    const logFile = join(dir, 'kafka.log');
    const port = config.kafkaCluster.port + id - 1;
    const controllerPort = config.kafkaCluster.controllerPort + id - 1;
    return {
      name: `kafka-${id}`,
      optional: true,
      files: { pidFile: join(dir, 'kafka.pid'), logFile, marker: mainClass },
      ports: [
        { port, variable: `SLUICE_KAFKA_CLUSTER_PORT (+${id - 1})` },
        { port: controllerPort, variable: `SLUICE_KAFKA_CLUSTER_CONTROLLER_PORT (+${id - 1})` },
      ],
      startTimeoutMs: 120_000,
      debianPackages: [],

      async prepare() {
        java = requireJava(17);
        const libs = await kafkaJars(config.cacheDir, pom);
        mkdirSync(dir, { recursive: true });
        renderTemplate(join(config.repoRoot, 'deploy/local/kafka/cluster.properties.template'), propsFile, {
          nodeId: id,
          voters,
          host: config.host,
          port,
          controllerPort,
          dataDir,
        });
        renderTemplate(join(config.repoRoot, 'deploy/local/kafka/log4j2.yaml.template'), log4jFile, { logFile });
        if (!existsSync(join(dataDir, 'meta.properties'))) {
          const out = spawnSync(java, ['-cp', `${libs}/*`, 'kafka.tools.StorageTool', 'format', `--cluster-id=${clusterId()}`, '-c', propsFile], {
            encoding: 'utf8',
          });
          if (out.status !== 0) throw new Error(`kafka-${id} storage format failed:\n${out.stdout}${out.stderr}`);
        }
      },

      launchSpec() {
        return {
          command: java,
          args: [
            `-Xms${config.kafkaCluster.heap}`,
            `-Xmx${config.kafkaCluster.heap}`,
            '-XX:+UseG1GC',
            '-XX:MaxGCPauseMillis=20',
            '-Djava.awt.headless=true',
            `-Dlog4j2.configurationFile=${log4jFile}`,
            '-cp',
            `${kafkaJarsDir(config.cacheDir, pom)}/*`,
            mainClass,
            propsFile,
          ],
          cwd: dir,
        };
      },

      async probe() {
        // this node serves, and the cluster it sees has a controller and all three brokers
        const admin = new Kafka({
          clientId: 'sluice-stack-probe',
          brokers: [`${config.host}:${port}`],
          logLevel: logLevel.NOTHING,
          connectionTimeout: 1_000,
          requestTimeout: 2_000,
          retry: { retries: 0 },
        }).admin();
        try {
          await admin.connect();
          const cluster = await admin.describeCluster();
          if (cluster.controller === null || !cluster.brokers.some((b) => b.nodeId === id)) throw new Error('not registered with a controller yet');
        } finally {
          await admin.disconnect();
        }
      },

      endpoints() {
        return [`kafka://${config.host}:${port} (KRaft cluster node ${id} of 3, ${kafkaVersion(pom)}; replication 3, min.insync.replicas 2)`];
      },
    };
  });
}
