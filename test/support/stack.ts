// What tests share about the running local stack: its endpoints, ready-made clients that clean
// up after the test, and the servers' log tails printed when a test fails.

import { randomUUID } from 'node:crypto';
import type { TestContext } from 'node:test';
import { InfluxDB } from '@influxdata/influxdb-client';
import { type Admin, Kafka, logLevel } from 'kafkajs';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { LocalStack } from '../../deploy/local/local-stack.ts';
import { stackConfig } from '../../deploy/local/stack-config.ts';

export const config = stackConfig();
export const stack = new LocalStack(config, () => {});

export const endpoints = {
  mqtt: `mqtt://${config.host}:${config.mqtt.port}`,
  mqtts: `mqtts://${config.host}:${config.mqtt.tlsPort}`,
  mqttAuth: `mqtt://${config.host}:${config.mqtt.authPort}`,
  kafka: `${config.host}:${config.kafka.port}`,
  kafkaMtls: `${config.host}:${config.kafka.tlsPort}`,
  kafkaSasl: `${config.host}:${config.kafka.saslPort}`,
  influxdb: `http://${config.host}:${config.influxdb.port}`,
  influxBucket: `${config.influxdb.database}/autogen`,
  victoriaMetrics: `http://${config.host}:${config.victoriaMetrics.port}`,
  registry: `http://${config.host}:${config.registry.port}/apis/ccompat/v7`,
  s3: `http://${config.host}:${config.s3.port}`,
} as const;

/** A name no other test or earlier run uses (topics, groups, client ids, measurements). */
export function unique(prefix: string): string {
  return `${prefix}-${randomUUID().slice(0, 8)}`;
}

/** On failure, the tail of every server's log goes to stderr with the test's report. */
export function printLogsOnFailure(t: TestContext): void {
  t.after(() => {
    // TestContext.passed exists since Node 21.7; @types/node does not declare it yet.
    if (!(t as TestContext & { readonly passed: boolean }).passed) process.stderr.write(`\n${t.name} failed; server logs:\n${stack.logTails()}\n`);
  });
}

export async function mqttClient(t: TestContext, options: IClientOptions = {}): Promise<MqttClient> {
  const client = await mqtt.connectAsync(endpoints.mqtt, {
    protocolVersion: 5,
    clientId: unique('test'),
    reconnectPeriod: 0,
    connectTimeout: 5_000,
    ...options,
  });
  t.after(() => client.endAsync(true));
  return client;
}

export function kafka(clientId = unique('test'), brokers: readonly string[] = [endpoints.kafka]): Kafka {
  // kafkajs logs retriable errors (a coordinator still loading) at ERROR; tests assert outcomes.
  return new Kafka({ clientId, brokers: [...brokers], logLevel: logLevel.NOTHING });
}

/** Records appended to a topic: its partitions' high watermarks summed (offsets are dense without transactions). */
export async function highWater(topic: string): Promise<number> {
  const admin = kafka().admin();
  await admin.connect();
  try {
    return (await admin.fetchTopicOffsets(topic)).reduce((sum, o) => sum + Number(o.high), 0);
  } finally {
    await admin.disconnect();
  }
}

/** Creates a topic for one test and deletes it afterwards. */
export async function kafkaTopic(t: TestContext, partitions = 3): Promise<string> {
  const topic = unique('test');
  const admin = kafka().admin();
  await admin.connect();
  t.after(async () => {
    await admin.deleteTopics({ topics: [topic] }).catch(() => {});
    await admin.disconnect();
  });
  await createReadyTopic(admin, topic, partitions);
  return topic;
}

/** Creates a topic and returns once the broker lists it with a leader for every partition. */
export async function createReadyTopic(
  admin: Admin,
  topic: string,
  partitions: number,
  configEntries: Array<{ name: string; value: string }> = [],
): Promise<void> {
  // a broker just started, or thawed from SIGSTOP, may not host the new partitions for a moment: ask again
  for (let attempt = 0; ; attempt++) {
    try {
      await admin.createTopics({ topics: [{ topic, numPartitions: partitions, configEntries }], waitForLeaders: true });
      break;
    } catch (err) {
      if (attempt >= 20 || (err as { type?: string }).type !== 'UNKNOWN_TOPIC_OR_PARTITION') throw err;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  // kafkajs waits for leaders only while the broker says LEADER_NOT_AVAILABLE; a broker whose
  // metadata does not show the topic yet answers UNKNOWN_TOPIC_OR_PARTITION, and the retry above
  // then returns at once (TOPIC_ALREADY_EXISTS). A sink listing topics in that moment sees none
  // (with creation off it refuses the records as kafka-topic-missing): wait until the broker
  // lists the topic with a leader for every partition.
  const deadline = Date.now() + 30_000;
  while (!(await topicReady(admin, topic, partitions))) {
    if (Date.now() > deadline) throw new Error(`topic ${topic}: created, but the broker's metadata does not show it with leaders after 30 s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function topicReady(admin: Admin, topic: string, partitions: number): Promise<boolean> {
  try {
    if (!(await admin.listTopics()).includes(topic)) return false;
    const [meta] = (await admin.fetchTopicMetadata({ topics: [topic] })).topics;
    return meta?.partitions.length === partitions && meta.partitions.every((p) => p.leader >= 0);
  } catch {
    return false;
  }
}

export function influxWriteApi(url: string) {
  // InfluxDB 1.8 takes "user:password" as the token; auth is off on the local stack.
  return new InfluxDB({ url, token: 'sluice:sluice' }).getWriteApi('', endpoints.influxBucket, 'ms', {
    maxRetries: 0,
  });
}

/** Runs an InfluxQL query against the stack's InfluxDB. */
export async function influxQuery(q: string): Promise<unknown[][]> {
  const url = `${endpoints.influxdb}/query?${new URLSearchParams({ db: config.influxdb.database, q })}`;
  const body = (await (await fetch(url)).json()) as {
    results: Array<{ series?: Array<{ columns: string[]; values: unknown[][] }>; error?: string }>;
  };
  const result = body.results[0];
  if (result?.error) throw new Error(result.error);
  return result?.series?.[0]?.values ?? [];
}
