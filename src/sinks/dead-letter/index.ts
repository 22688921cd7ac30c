// The dead-letter sink as a plugin: always built (every worker must be able to refuse a
// message without losing it), fed by the pipeline rather than by a route, writing to
// kafka.deadLetterTopic with the kafka section's connection settings. README.md beside this
// file is its documentation.
import { kafkaConfig, type KafkaConfig } from '../kafka/config.ts';
import { kafkaSinkOptions } from '../kafka/index.ts';
import { KafkaSink } from '../kafka/kafka-sink.ts';
import type { SinkPlugin } from '../plugin.ts';
import { DeadLetterSink } from './dead-letter-sink.ts';

export const deadLetterPlugin: SinkPlugin = {
  name: 'dead-letter',
  always: true,
  async create({ sections, log }) {
    const k = (sections.kafka ?? kafkaConfig.parse(undefined)) as KafkaConfig;
    return {
      sink: new DeadLetterSink(new KafkaSink(await kafkaSinkOptions(k, 'dead-letter'), log), k.deadLetterTopic),
      batch: { maxItems: k.batch.maxMessages, maxBytes: k.batch.maxBytes, lingerMs: k.batch.lingerMs },
    };
  },
};
