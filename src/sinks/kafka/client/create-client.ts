// The kafka section made into a client: files and secrets read now (an error names the key,
// never a secret's value), the adapter the config names. Only that adapter's library is loaded:
// @platformatic/kafka alone adds ~57 MiB of RSS to a worker as its ~330 files (less, bundled into
// one with its option validators made lazy: scripts/bundle-kafka-client.ts), kafkajs ~18 MiB.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { resolveSecret } from '../../../secrets.ts';
import type { KafkaConfig } from '../config.ts';
import type { KafkaClient, KafkaConnection, KafkaSasl, KafkaTls, ProducerTuning } from './kafka-client.ts';

const run = promisify(execFile);

export async function createKafkaClient(k: KafkaConfig, overrides: { clientId?: string; brokers?: readonly string[] } = {}): Promise<KafkaClient> {
  const connection: KafkaConnection = {
    brokers: overrides.brokers ?? k.brokers,
    clientId: overrides.clientId ?? k.clientId,
    tls: kafkaTls(k),
    sasl: kafkaSasl(k),
    connectTimeoutMs: k.connectTimeoutMs,
    requestTimeoutMs: k.requestTimeoutMs,
  };
  const tuning: ProducerTuning = { compression: k.compression, acks: k.acks, idempotent: k.idempotent, maxInFlightRequests: k.maxInFlightRequests };
  if (k.client === 'kafkajs') {
    const { KafkajsClient } = await import('./kafkajs-client.ts');
    return new KafkajsClient(connection, tuning);
  }
  if (k.client === 'rdkafka') {
    const { RdkafkaClient } = await import('./rdkafka-client.ts');
    return new RdkafkaClient(connection, tuning);
  }
  const { PlatformaticClient } = await import('./platformatic-client.ts');
  return new PlatformaticClient(connection, tuning);
}

function kafkaTls(k: KafkaConfig): KafkaTls | undefined {
  const t = k.tls;
  if (!t) return undefined;
  const pem = (file: string | undefined, key: string) => {
    if (file === undefined) return undefined;
    try {
      return readFileSync(file, 'utf8');
    } catch (err) {
      throw new Error(`kafka.tls.${key}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
    }
  };
  return {
    ca: pem(t.ca, 'ca'),
    cert: pem(t.cert, 'cert'),
    key: pem(t.key, 'key'),
    passphrase: t.keyPassword && resolveSecret(t.keyPassword, 'kafka.tls.keyPassword'),
    servername: t.serverName,
    rejectUnauthorized: t.rejectUnauthorized,
  };
}

function kafkaSasl(k: KafkaConfig): KafkaSasl | undefined {
  const s = k.sasl;
  if (!s) return undefined;
  if (s.mechanism !== 'oauthbearer') {
    return {
      mechanism: s.mechanism,
      username: s.username as string,
      password: resolveSecret(s.password as NonNullable<typeof s.password>, 'kafka.sasl.password'),
    };
  }
  const source = s.token as NonNullable<typeof s.token>;
  const token =
    'file' in source
      ? async () => {
          try {
            return (await readFile(source.file, 'utf8')).trim();
          } catch (err) {
            throw new Error(`kafka.sasl.token: cannot read ${source.file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
          }
        }
      : async () => {
          const [command, ...args] = source.command as [string, ...string[]];
          try {
            return (await run(command, args, { timeout: 10_000, maxBuffer: 1 << 20 })).stdout.trim();
          } catch (err) {
            // the command's words, never its output (which may hold a token)
            throw new Error(`kafka.sasl.token: command ${command} failed: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message.split('\n')[0]}`);
          }
        };
  return { mechanism: 'oauthbearer', token };
}
