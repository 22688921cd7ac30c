// Apache Kafka in KRaft mode from Maven Central's jars (deploy/local/kafka/pom.xml), run with
// `java -cp`: one combined broker and controller node, storage formatted on first start.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { mavenJars, mavenJarsDir } from '../maven.ts';
import { requireJava } from '../prerequisites.ts';
import type { StackConfig } from '../stack-config.ts';
import { renderTemplate } from '../template.ts';
import { ensureCertificates } from '../tls.ts';
import type { LocalServer } from './local-server.ts';

const mainClass = 'kafka.Kafka';

export function kafkaServer(config: StackConfig): LocalServer {
  const dir = join(config.runDir, 'kafka');
  const dataDir = join(dir, 'data');
  const propsFile = join(dir, 'server.properties');
  const log4jFile = join(dir, 'log4j2.yaml');
  const logFile = join(dir, 'kafka.log');
  const pom = join(config.repoRoot, 'deploy/local/kafka/pom.xml');
  let java = 'java';

  return {
    name: 'kafka',
    files: { pidFile: join(dir, 'kafka.pid'), logFile, marker: mainClass },
    ports: [
      { port: config.kafka.port, variable: 'SLUICE_KAFKA_PORT' },
      { port: config.kafka.controllerPort, variable: 'SLUICE_KAFKA_CONTROLLER_PORT' },
      { port: config.kafka.tlsPort, variable: 'SLUICE_KAFKA_TLS_PORT' },
      { port: config.kafka.saslPort, variable: 'SLUICE_KAFKA_SASL_PORT' },
      { port: config.kafka.proxiedPort, variable: 'SLUICE_KAFKA_PROXIED_PORT' },
    ],
    startTimeoutMs: 90_000,
    debianPackages: [],

    async prepare() {
      java = requireJava(17);
      const libs = await kafkaJars(config.cacheDir, pom);
      const tls = ensureCertificates(config.runDir);
      // Kafka's PEM keystore: the key and its certificate in one file
      const keystorePem = join(dir, 'keystore.pem');
      mkdirSync(dir, { recursive: true });
      writeFileSync(keystorePem, readFileSync(tls.serverKey, 'utf8') + readFileSync(tls.serverCert, 'utf8'), { mode: 0o600 });
      const { saslUsername, saslPassword } = config.kafka;
      renderTemplate(join(config.repoRoot, 'deploy/local/kafka/server.properties.template'), propsFile, {
        host: config.host,
        port: config.kafka.port,
        controllerPort: config.kafka.controllerPort,
        tlsPort: config.kafka.tlsPort,
        saslPort: config.kafka.saslPort,
        proxiedPort: config.kafka.proxiedPort,
        proxyPort: config.kafka.proxyPort,
        keystorePem,
        caPem: tls.ca,
        saslUsername,
        saslPassword,
        dataDir,
      });
      // SCRAM users live in the cluster metadata, added when the storage is formatted: a stack
      // formatted before they existed is formatted again (its topics are the tests' own)
      const scramMarker = join(dir, 'scram-users-formatted');
      if (existsSync(join(dataDir, 'meta.properties')) && !existsSync(scramMarker)) rmSync(dataDir, { recursive: true, force: true });
      renderTemplate(join(config.repoRoot, 'deploy/local/kafka/log4j2.yaml.template'), log4jFile, { logFile });
      if (!existsSync(join(dataDir, 'meta.properties'))) {
        // base64url may start with "-", which the tool's argument parser reads as an option (1 run
        // in 64 failed so): pass it as --cluster-id=VALUE, as Kafka's own Uuid avoids a leading "-"
        const clusterId = randomBytes(16).toString('base64url');
        const scram = ['SCRAM-SHA-256', 'SCRAM-SHA-512'].flatMap((m) => ['--add-scram', `${m}=[name=${saslUsername},password=${saslPassword}]`]);
        const out = spawnSync(java, ['-cp', `${libs}/*`, 'kafka.tools.StorageTool', 'format', `--cluster-id=${clusterId}`, '-c', propsFile, ...scram], {
          encoding: 'utf8',
        });
        if (out.status !== 0) throw new Error(`kafka storage format failed:\n${out.stdout}${out.stderr}`);
        writeFileSync(scramMarker, `${saslUsername}\n`);
      }
    },

    launchSpec() {
      const libs = kafkaJarsDir(config.cacheDir, pom);
      return {
        command: java,
        args: [
          `-Xms${config.kafka.heap}`,
          `-Xmx${config.kafka.heap}`,
          '-XX:+UseG1GC',
          '-XX:MaxGCPauseMillis=20',
          '-Djava.awt.headless=true',
          `-Dlog4j2.configurationFile=${log4jFile}`,
          '-cp',
          `${libs}/*`,
          mainClass,
          propsFile,
        ],
        cwd: dir,
      };
    },

    async probe() {
      // A real Kafka protocol round trip: metadata with a live broker and an elected controller.
      const admin = new Kafka({
        clientId: 'sluice-stack-probe',
        brokers: [`${config.host}:${config.kafka.port}`],
        logLevel: logLevel.NOTHING,
        connectionTimeout: 1_000,
        requestTimeout: 2_000,
        retry: { retries: 0 },
      }).admin();
      try {
        await admin.connect();
        const cluster = await admin.describeCluster();
        if (cluster.brokers.length === 0 || cluster.controller === null) throw new Error('no broker or controller yet');
      } finally {
        await admin.disconnect();
      }
    },

    endpoints() {
      return [
        `kafka://${config.host}:${config.kafka.port} (KRaft, ${kafkaVersion(pom)})`,
        `kafka+mtls://${config.host}:${config.kafka.tlsPort} (client certificate from .stack/tls required)`,
        `kafka+sasl://${config.host}:${config.kafka.saslPort} (PLAIN, SCRAM-SHA-256/512 ${config.kafka.saslUsername}, unsecured OAUTHBEARER)`,
      ];
    },
  };
}

export function kafkaVersion(pom: string): string {
  return /<kafka\.version>([^<]+)</.exec(readFileSync(pom, 'utf8'))?.[1] ?? 'unknown';
}

export function kafkaJarsDir(cacheDir: string, pom: string): string {
  return mavenJarsDir(cacheDir, `kafka-${kafkaVersion(pom)}`, pom);
}

export function kafkaJars(cacheDir: string, pom: string): Promise<string> {
  return mavenJars(cacheDir, `kafka-${kafkaVersion(pom)}`, pom, `Kafka ${kafkaVersion(pom)}`);
}
