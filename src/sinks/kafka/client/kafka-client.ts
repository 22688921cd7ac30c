// The port between the Kafka sink and a Kafka client library. The sink decides what is whose
// fault and when a producer session starts again (kafka-sink.ts); an adapter only sends record
// batches, answers topic questions, and names the broker's error codes found in an error. Three
// adapters keep it: @platformatic/kafka (the default, chosen on the bench's figures), kafkajs,
// and librdkafka through node-rdkafka (an optional dependency built at install).
import type { KafkaRecord } from '../kafka-record.ts';

export const kafkaClients = ['platformatic', 'kafkajs', 'rdkafka'] as const;
export type KafkaClientKind = (typeof kafkaClients)[number];

export const compressions = ['none', 'gzip', 'snappy', 'lz4', 'zstd'] as const;
export type Compression = (typeof compressions)[number];

/** TLS to the brokers: PEM contents already read (a CA to trust, a client certificate and key for mTLS). */
export interface KafkaTls {
  readonly ca?: string | undefined;
  readonly cert?: string | undefined;
  readonly key?: string | undefined;
  readonly passphrase?: string | undefined;
  readonly servername?: string | undefined;
  readonly rejectUnauthorized: boolean;
}

export type KafkaSasl =
  | { readonly mechanism: 'plain' | 'scram-sha-256' | 'scram-sha-512'; readonly username: string; readonly password: string }
  /** A token read anew for each connection (a file rotated by a sidecar, or a command's output). */
  | { readonly mechanism: 'oauthbearer'; readonly token: () => Promise<string> };

export interface KafkaConnection {
  readonly brokers: readonly string[];
  readonly clientId: string;
  readonly tls?: KafkaTls | undefined;
  readonly sasl?: KafkaSasl | undefined;
  readonly connectTimeoutMs: number;
  readonly requestTimeoutMs: number;
}

export interface ProducerTuning {
  readonly compression: Compression;
  /** -1: every in-sync replica (the default and the only value with idempotence); 1: the leader. */
  readonly acks: -1 | 1;
  readonly idempotent: boolean;
  /**
   * Produce requests in flight per broker connection. The client keeps the order per partition
   * with an idempotent producer; kafkajs only with 1.
   */
  readonly maxInFlightRequests: number;
}

export interface TopicBatch {
  readonly topic: string;
  readonly records: readonly KafkaRecord[];
}

/** One producer and its session (producer id, sequence numbers). */
export interface ProducerSession {
  connect(): Promise<void>;
  /**
   * Resolves once every record is acknowledged with the tuning's acks; rejects with the client's
   * error, marked (`markWritten`) with the records Kafka answered as written where the client
   * can tell: sent again on a new session, they would be in the topic twice.
   */
  send(batches: readonly TopicBatch[]): Promise<void>;
  /** A new session (a new producer id, sequences from 0): after any failed send. */
  reset(reconnect?: boolean): Promise<void>;
  close(): Promise<void>;
}

const written = Symbol('written');

/**
 * Marks a failed send's error with the records of it that Kafka answered as written (a partition
 * that answered without error, when another did not). Only what an answer says: a record whose
 * request timed out may be written too, and is not marked.
 */
export function markWritten(err: unknown, records: ReadonlySet<KafkaRecord>): void {
  if (records.size > 0 && err !== null && typeof err === 'object') Object.defineProperty(err, written, { value: records });
}

/** The records a failed send wrote after all (`markWritten`), if any. */
export function writtenBy(err: unknown): ReadonlySet<KafkaRecord> | undefined {
  return err !== null && typeof err === 'object' ? (err as { [written]?: ReadonlySet<KafkaRecord> })[written] : undefined;
}

export interface KafkaAdminPort {
  connect(): Promise<void>;
  /** Every topic in the cluster: metadata for all of them, so its cost grows with the cluster. */
  listTopics(): Promise<string[]>;
  /** Whether the topic is in the cluster: metadata for it alone, never creating it. */
  hasTopic(topic: string): Promise<boolean>;
  /** 'exists' when another worker made it first; rejects with the client's error otherwise. */
  createTopic(topic: string, partitions: number, replicationFactor: number): Promise<'created' | 'exists'>;
  disconnect(): Promise<void>;
}

/**
 * Waits until every partition of a topic just created has a leader (as kafkajs'
 * waitForLeaders): a library answers as soon as the controller accepted it, and a write or a
 * topic list at once may not see it yet. `leaders` asks the cluster (undefined or a throw: not
 * known yet). At most 10 s; then the writes find out.
 */
export async function untilLeaders(leaders: () => Promise<readonly number[] | undefined>): Promise<void> {
  for (const deadline = Date.now() + 10_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 100))) {
    const found = await leaders().catch(() => undefined);
    if (found && found.length > 0 && found.every((leader) => leader >= 0)) return;
  }
}

export interface BrokerFault {
  /** Kafka's error name, e.g. MESSAGE_TOO_LARGE. */
  readonly code: string;
  readonly text: string;
}

export interface KafkaClient {
  readonly kind: KafkaClientKind;
  /**
   * A producer. 'probe' writes a topic failing on its own: it must give up quickly (the least
   * retrying the client allows); 'main' may retry as the adapter sees fit.
   */
  session(purpose: 'main' | 'probe'): ProducerSession;
  admin(): KafkaAdminPort;
  /** The broker's error codes found in the error and its causes, outermost first. */
  faults(err: unknown): BrokerFault[];
  /** Whether the broker answered (a protocol error) rather than the connection failing. */
  answered(err: unknown): boolean;
  /** The error's words for a log line or a dead letter, the causes joined. */
  reason(err: unknown): string;
}
