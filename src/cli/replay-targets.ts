// Where `sluice audit replay` sends the commands it reads: JSON lines, a Kafka topic (with the
// headers sluice writes live), or an MQTT broker under a prefix. Each is a ReplayTarget, the
// port of the audit library's replay.
import type { MqttClient } from 'mqtt';
import { type CommandRecord, fromRecord } from '../audit/log/format.ts';
import type { ReplayTarget } from '../audit/tools/replay.ts';
import type { KafkaClient } from '../sinks/kafka/client/kafka-client.ts';
import { mqttHeaders } from '../sinks/kafka/kafka-headers.ts';
import type { KafkaRecord } from '../sinks/kafka/kafka-record.ts';

/** JSON lines: each record's body exactly as stored (it is one line of JSON). */
export function jsonLinesTarget(out: NodeJS.WritableStream): ReplayTarget {
  return {
    async send(_record, body) {
      if (!out.write(Buffer.concat([body, Buffer.from('\n')]))) await new Promise((r) => out.once('drain', r));
    },
    async flush() {},
    async close() {},
  };
}

/** The Kafka record of a replayed command: the headers sluice writes live, plus its audit seq. */
export function kafkaRecordOf(record: CommandRecord, topic: string): KafkaRecord {
  const message = fromRecord(record);
  const headers = mqttHeaders(message);
  headers['sluice-audit-seq'] = String(record.seq);
  headers['sluice-received-at'] = record.receivedAt;
  headers['sluice-replayed'] = 'true';
  return { topic, key: record.levels.deviceId ?? null, value: message.payload, headers, timestamp: message.receivedAt };
}

/** A Kafka topic, through the configured client: its producer settings (idempotent, acks -1 by default), batches of 500 in order. */
export async function kafkaTarget(client: KafkaClient, topic: string): Promise<ReplayTarget> {
  const producer = client.session('main');
  await producer.connect();
  let batch: KafkaRecord[] = [];
  const flush = async () => {
    if (batch.length === 0) return;
    const records = batch;
    batch = [];
    await producer.send([{ topic, records }]);
  };
  return {
    async send(record) {
      batch.push(kafkaRecordOf(record, topic));
      if (batch.length >= 500) await flush();
    },
    flush,
    close: () => producer.close(),
  };
}

/** An MQTT broker: each command republished under `prefix/`, at its recorded QoS, with its properties. */
export function mqttTarget(client: MqttClient, prefix: string): ReplayTarget {
  const inFlight = new Set<Promise<unknown>>();
  return {
    async send(record) {
      // the recorded properties; not the expiry, which counted down from when it was received
      const message = fromRecord(record);
      const { messageExpiryInterval: _expired, ...properties } = message.properties;
      const sent = client.publishAsync(`${prefix.replace(/\/$/, '')}/${record.topic}`, message.payload, {
        qos: record.qos as 0 | 1 | 2,
        retain: false,
        properties,
      });
      inFlight.add(sent);
      void sent.finally(() => inFlight.delete(sent)).catch(() => {});
      // a few in flight keep order (one connection, in sequence) and stay under broker quotas
      if (inFlight.size >= 10) await Promise.race(inFlight);
    },
    async flush() {
      await Promise.all(inFlight);
    },
    close: () => client.endAsync(),
  };
}
