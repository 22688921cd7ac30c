// Where the worker's Kafka client comes from: vendor/platformatic-kafka.js, @platformatic/kafka
// bundled with sluice's replacements for some of its modules (scripts/bundle-kafka-client.ts;
// `npm run build` makes it). The same relative path from src/ and from dist/.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export type KafkaClientBundle = typeof import('./platformatic-kafka.ts');

export const kafkaClientBundleUrl = new URL('../../../../vendor/platformatic-kafka.js', import.meta.url);

export async function loadKafkaClientBundle(): Promise<KafkaClientBundle> {
  const file = fileURLToPath(kafkaClientBundleUrl);
  if (!existsSync(file)) {
    throw new Error(`the Kafka client bundle ${file} is missing: \`npm run build\` makes it (scripts/bundle-kafka-client.ts)`);
  }
  return (await import(kafkaClientBundleUrl.href)) as KafkaClientBundle;
}
