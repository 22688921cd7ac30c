// What the router hands to the sinks: plain records, built from a message by the rules.

export type KafkaHeaderValue = string | Buffer | Array<string | Buffer>;

export interface KafkaRecord {
  readonly topic: string;
  readonly key: string | null;
  readonly value: Buffer;
  readonly headers: Record<string, KafkaHeaderValue>;
  /** Epoch milliseconds as a decimal string (kafkajs' format). */
  readonly timestamp: string;
}

/** Why a message went to the dead-letter topic: a closed list, so it can be a metric label. */
export type DeadLetterReason =
  | 'unmatched'
  | 'invalid-utf8'
  | 'invalid-json'
  | 'empty-level'
  | 'mapping'
  | 'invalid-kafka-topic'
  | 'kafka-topic-missing'
  | 'rejected-by-kafka'
  | 'rejected-by-influx'
  | 'audit-refused';

export type Stage = 'decode' | 'route' | 'map' | 'write';

export interface DeadLetterNote {
  readonly reason: DeadLetterReason;
  readonly stage: Stage;
  readonly route?: string;
  readonly sink?: 'kafka' | 'influx' | 'audit';
  readonly error: string;
}

export interface Routed {
  readonly outcome: 'routed' | 'expired' | 'unmatched-dropped';
  /** Names of the routes that matched, for metrics. */
  readonly routes: readonly string[];
  readonly kafka: ReadonlyArray<{ readonly route: string; readonly record: KafkaRecord }>;
  readonly influx: ReadonlyArray<{ readonly route: string; readonly line: string }>;
  readonly deadLetters: readonly DeadLetterNote[];
  /** The first matching audit route: record the message, with that route's named levels. */
  readonly audit?: { readonly route: string; readonly levels: Readonly<Record<string, string>> };
  /** The payload's own timestamp (ms), when a route reads one: for end-to-end latency. */
  readonly eventTimeMs?: number;
}
