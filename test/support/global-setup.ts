// `node --test --test-global-setup`: bundles the Kafka client from the sources, brings the local
// stack up once for the whole run and takes down only what it started itself (a stack you
// started by hand keeps running).
// SLUICE_KEEP_STACK=1 leaves it running for a faster next run.
import { LocalStack } from '../../deploy/local/local-stack.ts';
import { stackConfig } from '../../deploy/local/stack-config.ts';
import { bundleKafkaClient } from '../../scripts/bundle-kafka-client.ts';

let started: string[] = [];
let stack: LocalStack | undefined;

export async function globalSetup(): Promise<void> {
  // the worker's Kafka client is a bundle of the library and sluice's modules: made from the sources under test
  await bundleKafkaClient();
  stack = new LocalStack(stackConfig());
  started = await stack.up();
}

export async function globalTeardown(): Promise<void> {
  if (!stack || started.length === 0 || process.env.SLUICE_KEEP_STACK === '1') return;
  await stack.down(started);
}
