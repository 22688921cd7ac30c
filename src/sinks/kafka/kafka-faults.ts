// Whose fault a failed produce is, decided once for both clients from the broker's error codes:
// a record's (too large, invalid: found by halving, rejected alone), one topic's (deleted, not
// authorised, no leader: that topic's records wait, the others are written), or else the
// cluster's (down, timing out: the whole batch is retried).
import type { KafkaClient } from './client/kafka-client.ts';

/** The reason a record is rejected for what it is (too large, invalid): the only one shrinking can help. */
export const recordRejected = 'rejected-by-kafka';

/** Protocol errors that are about the records, not the cluster's state. */
const recordFaults = new Set(['MESSAGE_TOO_LARGE', 'RECORD_LIST_TOO_LARGE', 'INVALID_RECORD', 'CORRUPT_MESSAGE', 'INVALID_TIMESTAMP']);
/** Protocol errors about one topic or its partitions: other topics can still be written. */
const topicFaults = new Set([
  'UNKNOWN_TOPIC_OR_PARTITION',
  'TOPIC_AUTHORIZATION_FAILED',
  'LEADER_NOT_AVAILABLE',
  'NOT_LEADER_FOR_PARTITION',
  'NOT_LEADER_OR_FOLLOWER',
  'NOT_ENOUGH_REPLICAS',
  'NOT_ENOUGH_REPLICAS_AFTER_APPEND',
  'KAFKA_STORAGE_ERROR',
  'REPLICA_NOT_AVAILABLE',
  'UNKNOWN_LEADER_EPOCH',
  'FENCED_LEADER_EPOCH',
  'INVALID_TOPIC_EXCEPTION',
  'POLICY_VIOLATION',
]);

export class KafkaFaults {
  private readonly client: KafkaClient;

  constructor(client: KafkaClient) {
    this.client = client;
  }

  /** The broker's words when the error is the records' fault. */
  record(err: unknown): string | undefined {
    return this.find(err, recordFaults);
  }

  /** The broker's words when the error is one topic's fault. */
  topic(err: unknown): string | undefined {
    return this.find(err, topicFaults);
  }

  /** Whether the error may be one topic's or one record's fault (then the batch is split). */
  isolating(err: unknown): boolean {
    return this.record(err) !== undefined || this.topic(err) !== undefined;
  }

  private find(err: unknown, types: ReadonlySet<string>): string | undefined {
    return this.client.faults(err).find((f) => types.has(f.code))?.text;
  }
}
