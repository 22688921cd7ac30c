// Where the local stack lives and listens: one object built from the environment, so the CLI,
// the tests, the demo and the benchmark all agree on ports and directories.
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

export interface StackConfig {
  readonly repoRoot: string;
  /** Data, logs, pid files, rendered configs and certificates. */
  readonly runDir: string;
  /** Downloads and builds kept across runs (Kafka jars, influxd, Node). */
  readonly cacheDir: string;
  readonly host: '127.0.0.1';
  readonly mqtt: { readonly port: number; readonly tlsPort: number; readonly authPort: number; readonly username: string; readonly password: string };
  readonly hivemq: { readonly port: number };
  readonly kafka: {
    readonly port: number;
    readonly controllerPort: number;
    /** mTLS (the stack's CA, a client certificate required) and SASL (PLAIN, SCRAM-SHA-256/512, unsecured OAUTHBEARER) listeners. */
    readonly tlsPort: number;
    readonly saslPort: number;
    /**
     * A plaintext listener that advertises `proxyPort`, where a test's Toxiproxy listens and
     * forwards to it: clients told the cluster's addresses come back through the proxy.
     */
    readonly proxiedPort: number;
    readonly proxyPort: number;
    readonly saslUsername: string;
    readonly saslPassword: string;
    readonly heap: string;
  };
  /** The optional 3-node cluster: node i listens on port + i - 1 and controllerPort + i - 1. */
  readonly kafkaCluster: { readonly port: number; readonly controllerPort: number; readonly heap: string };
  readonly influxdb: { readonly port: number; readonly rpcPort: number; readonly database: string };
  readonly victoriaMetrics: { readonly port: number };
  /** Apicurio Registry's Confluent-compatible API: http://host:port/apis/ccompat/v7. */
  readonly registry: { readonly port: number };
  /** An S3 server (versitygw) whose bucket enforces Object Lock: the audit log's write-once archive. */
  readonly s3: { readonly port: number; readonly accessKeyId: string; readonly secretAccessKey: string; readonly bucket: string };
}

/** Every port the stack binds, with the variable that moves it (the defaults avoid 1883/9092/8086). */
export const portVariables = {
  SLUICE_MQTT_PORT: 21883,
  SLUICE_MQTTS_PORT: 28883,
  SLUICE_MQTT_AUTH_PORT: 21884,
  SLUICE_HIVEMQ_PORT: 21885,
  SLUICE_KAFKA_PORT: 29092,
  SLUICE_KAFKA_CONTROLLER_PORT: 29093,
  SLUICE_KAFKA_TLS_PORT: 29094,
  SLUICE_KAFKA_SASL_PORT: 29095,
  SLUICE_KAFKA_PROXIED_PORT: 29096,
  SLUICE_KAFKA_PROXY_PORT: 29097,
  SLUICE_KAFKA_CLUSTER_PORT: 29192,
  SLUICE_KAFKA_CLUSTER_CONTROLLER_PORT: 29292,
  SLUICE_INFLUX_PORT: 28086,
  SLUICE_INFLUX_RPC_PORT: 28088,
  SLUICE_VM_PORT: 28428,
  SLUICE_REGISTRY_PORT: 28081,
  SLUICE_S3_PORT: 27070,
} as const;
type PortVariable = keyof typeof portVariables;

export function stackConfig(env: NodeJS.ProcessEnv = process.env): StackConfig {
  const port = (name: PortVariable): number => {
    const raw = env[name];
    if (raw === undefined || raw === '') return portVariables[name];
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 1 || n > 65535) {
      throw new Error(`${name}=${JSON.stringify(raw)} is not a TCP port (1-65535)`);
    }
    return n;
  };
  const cacheHome = env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return {
    repoRoot,
    runDir: resolve(env.SLUICE_STACK_DIR || join(repoRoot, '.stack')),
    cacheDir: resolve(env.SLUICE_CACHE_DIR || join(cacheHome, 'sluice')),
    host: '127.0.0.1',
    mqtt: {
      port: port('SLUICE_MQTT_PORT'),
      tlsPort: port('SLUICE_MQTTS_PORT'),
      authPort: port('SLUICE_MQTT_AUTH_PORT'),
      // a loopback-only development broker: a fixed, documented password
      username: 'sluice',
      password: 'sluice-dev-password',
    },
    hivemq: { port: port('SLUICE_HIVEMQ_PORT') },
    kafka: {
      port: port('SLUICE_KAFKA_PORT'),
      controllerPort: port('SLUICE_KAFKA_CONTROLLER_PORT'),
      tlsPort: port('SLUICE_KAFKA_TLS_PORT'),
      saslPort: port('SLUICE_KAFKA_SASL_PORT'),
      proxiedPort: port('SLUICE_KAFKA_PROXIED_PORT'),
      proxyPort: port('SLUICE_KAFKA_PROXY_PORT'),
      // loopback only, like the broker's: a fixed, documented password (PLAIN and both SCRAMs)
      saslUsername: 'sluice',
      saslPassword: 'sluice-dev-password',
      heap: env.SLUICE_KAFKA_HEAP || '512m',
    },
    kafkaCluster: {
      port: port('SLUICE_KAFKA_CLUSTER_PORT'),
      controllerPort: port('SLUICE_KAFKA_CLUSTER_CONTROLLER_PORT'),
      heap: env.SLUICE_KAFKA_CLUSTER_HEAP || '384m',
    },
    influxdb: { port: port('SLUICE_INFLUX_PORT'), rpcPort: port('SLUICE_INFLUX_RPC_PORT'), database: 'sluice' },
    victoriaMetrics: { port: port('SLUICE_VM_PORT') },
    registry: { port: port('SLUICE_REGISTRY_PORT') },
    // loopback only: fixed, documented keys, as for the broker
    s3: { port: port('SLUICE_S3_PORT'), accessKeyId: 'sluice', secretAccessKey: 'sluice-dev-secret-key', bucket: 'sluice-audit' },
  };
}
