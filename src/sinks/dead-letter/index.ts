// The dead-letter sink as a plugin: always built (every worker must be able to refuse a
// message without losing it), fed by the pipeline rather than by a route. Its deadLetter
// section chooses where: the Kafka topic deadLetter.topic (with the kafka section's
// connection settings), a JSON-lines file, or hold. README.md beside this file is its
// documentation.
import { dirname } from 'node:path';
import { type KafkaConfig, kafkaConfig } from '../kafka/config.ts';
import { kafkaSinkOptions, probeKafka } from '../kafka/index.ts';
import { KafkaSink } from '../kafka/kafka-sink.ts';
import type { SinkPlugin } from '../plugin.ts';
import { directoryProbe } from '../probe.ts';
import { type DeadLetterConfig, deadLetterConfig } from './config.ts';
import { FileDeadLetterSink } from './dead-letter-file.ts';
import { HoldDeadLetters } from './dead-letter-hold.ts';
import { DeadLetterSink } from './dead-letter-sink.ts';

export const deadLetterPlugin: SinkPlugin = {
  name: 'dead-letter',
  section: 'deadLetter',
  config: deadLetterConfig,
  paths: ['path'],
  movedKeys: { 'kafka.deadLetterTopic': 'topic' },
  always: true,
  async create({ section, sections, log }) {
    const d = (section ?? deadLetterConfig.parse(undefined)) as DeadLetterConfig;
    if (d.to === 'file') {
      return { sink: new FileDeadLetterSink(d.path as string), batch: { maxItems: d.batch.maxLines, maxBytes: 8_000_000, lingerMs: d.batch.lingerMs } };
    }
    if (d.to === 'hold') return { sink: new HoldDeadLetters(), batch: { maxItems: 100, maxBytes: 8_000_000, lingerMs: 0 } };
    const k = (sections.kafka ?? kafkaConfig.parse(undefined)) as KafkaConfig;
    return {
      sink: new DeadLetterSink(new KafkaSink(await kafkaSinkOptions(k, 'dead-letter'), log), d.topic),
      batch: { maxItems: k.batch.maxMessages, maxBytes: k.batch.maxBytes, lingerMs: k.batch.lingerMs },
    };
  },
  async probe({ section, sections, timeoutMs }) {
    const d = (section ?? deadLetterConfig.parse(undefined)) as DeadLetterConfig;
    if (d.to === 'hold') return { ok: true, detail: 'to: hold (nothing to reach: a refused message stays unacknowledged)' };
    if (d.to === 'file') {
      const p = await directoryProbe(dirname(d.path as string));
      return { ok: p.ok, detail: `to: file ${d.path}: ${p.detail}` };
    }
    const k = (sections.kafka ?? kafkaConfig.parse(undefined)) as KafkaConfig;
    const p = await probeKafka(k, [d.topic], timeoutMs);
    return { ok: p.ok, detail: `to: kafka ${p.detail}` };
  },
};
