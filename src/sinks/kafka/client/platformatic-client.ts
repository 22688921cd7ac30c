// The @platformatic/kafka adapter: a maintained, pure-JS client with every compression, SASL
// PLAIN/SCRAM/OAUTHBEARER, and produce requests to several brokers at once. Keys go to the same
// partitions as with kafkajs and the Java client (murmur2, positive-masked, partitioner.ts);
// keyless records go round robin. Its idempotent producer keeps one request in flight per connection.
// The partitions are chosen here, before the library has the records, so a send that fails on
// some partitions says which records the others wrote (sent again, they would be there twice).
// The library is loaded as one bundled file (scripts/bundle-kafka-client.ts), with sluice's
// record-batch encoder in its produce requests: the adapter hands it keys and header values as
// strings and timestamps as numbers.
import type { Admin as LibraryAdmin, Producer as LibraryProducer, MessageToProduce, ProducerOptions, SASLOptions } from '@platformatic/kafka';
import type { KafkaRecord } from '../kafka-record.ts';
import {
  type BrokerFault,
  type KafkaAdminPort,
  type KafkaClient,
  type KafkaConnection,
  markWritten,
  type ProducerSession,
  type ProducerTuning,
  type TopicBatch,
  untilLeaders,
} from './kafka-client.ts';
import { Partitioner } from './partitioner.ts';
import { loadKafkaClientBundle } from './platformatic-bundle.ts';

const { Admin, Producer } = await loadKafkaClientBundle();

type Options = ProducerOptions<Buffer, Buffer, Buffer, Buffer>;

const mechanisms = { plain: 'PLAIN', 'scram-sha-256': 'SCRAM-SHA-256', 'scram-sha-512': 'SCRAM-SHA-512', oauthbearer: 'OAUTHBEARER' } as const;

export class PlatformaticClient implements KafkaClient {
  readonly kind = 'platformatic';
  private readonly base: Omit<Options, 'clientId'> & { clientId: string };
  private readonly tuning: ProducerTuning;

  constructor(connection: KafkaConnection, tuning: ProducerTuning) {
    this.tuning = tuning;
    const { tls, sasl } = connection;
    this.base = {
      clientId: connection.clientId,
      bootstrapBrokers: [...connection.brokers],
      connectTimeout: connection.connectTimeoutMs,
      requestTimeout: connection.requestTimeoutMs,
      timeout: connection.requestTimeoutMs,
      metadataMaxAge: 30_000,
      autocreateTopics: false,
      ...(tls
        ? {
            tls: {
              ca: tls.ca,
              cert: tls.cert,
              key: tls.key,
              passphrase: tls.passphrase,
              servername: tls.servername,
              rejectUnauthorized: tls.rejectUnauthorized,
            },
          }
        : {}),
      ...(tls?.servername ? { tlsServerName: tls.servername } : {}),
      ...(sasl ? { sasl: saslOf(sasl) } : {}),
    };
  }

  session(_purpose: 'main' | 'probe'): ProducerSession {
    const { idempotent, acks, compression, maxInFlightRequests } = this.tuning;
    // No retries inside the library: its retries nest (a produce retried, each try's connection
    // setup retried again), so with a frozen broker and requestTimeoutMs 3 s the first failure
    // surfaced after 29 s, and after minutes with the 30 s default; nothing was lost, but health
    // stayed green meanwhile. The sink's queue retries with backoff instead, and a failed send
    // starts a new session anyway. (A number of 0 or 1 means "for ever" to the library's
    // idempotent producer; false means none.) One stale-metadata repeat is kept.
    const retry = { retries: false as const };
    return new PlatformaticSession(
      idempotent,
      () =>
        new Producer<Buffer, Buffer, Buffer, Buffer>({
          ...this.base,
          ...retry,
          idempotent,
          acks,
          compression,
          maxInflights: maxInFlightRequests,
          repeatOnStaleMetadata: true,
        }),
    );
  }

  admin(): KafkaAdminPort {
    return new PlatformaticAdmin(() => new Admin({ ...this.base, retries: 1, retryDelay: 250 }));
  }

  faults(err: unknown): BrokerFault[] {
    return faultsOf(err);
  }

  answered(err: unknown): boolean {
    return this.faults(err).length > 0;
  }

  reason(err: unknown): string {
    const parts: string[] = [];
    walk(err, (e) => {
      if (parts.length >= 4 || e.code === 'PLT_KFK_MULTIPLE' || e.code === 'PLT_KFK_RESPONSE') return;
      const text = e.code === 'PLT_KFK_PROTOCOL' ? `${e.apiId}: ${e.serverErrorMessage ?? e.message}` : String(e.message);
      if (!parts.includes(text)) parts.push(text);
    });
    if (parts.length === 0) parts.push(String((err as Error)?.message ?? err));
    return parts.join(' / ');
  }
}

class PlatformaticSession implements ProducerSession {
  private producer: LibraryProducer<Buffer, Buffer, Buffer, Buffer>;
  private readonly make: () => LibraryProducer<Buffer, Buffer, Buffer, Buffer>;
  private readonly idempotent: boolean;
  private readonly partitioner = new Partitioner();
  private connected = false;

  constructor(idempotent: boolean, make: () => LibraryProducer<Buffer, Buffer, Buffer, Buffer>) {
    this.idempotent = idempotent;
    this.make = make;
    this.producer = make();
  }

  async connect(): Promise<void> {
    if (this.connected) return;
    // the client connects lazily: ask for the cluster's metadata so that a dead cluster fails here
    await this.producer.metadata({ topics: [] });
    // and take the producer id now: a broker just started answers "coordinator loading" for a
    // few seconds, which is worth asking again (it answered: no timeout is multiplied)
    for (let attempt = 0; this.idempotent; attempt++) {
      try {
        await this.producer.initIdempotentProducer({});
        break;
      } catch (err) {
        if (attempt >= 40 || !faultsOf(err).some((f) => coordinatorBusy.has(f.code))) throw err;
        await new Promise((r) => setTimeout(r, 250));
      }
    }
    this.connected = true;
  }

  async send(batches: readonly TopicBatch[]): Promise<void> {
    const messages = producerMessages(batches, true, { partitioner: this.partitioner, counts: await this.partitionCounts(batches) });
    try {
      await this.producer.send({ messages });
    } catch (err) {
      markWritten(err, writtenOf(err, batches, messages));
      throw err;
    }
  }

  /** Each topic's partition count, from the producer's metadata (asked for once for a topic it has not seen yet). */
  private async partitionCounts(batches: readonly TopicBatch[]): Promise<Map<string, number>> {
    const counts = new Map<string, number>();
    let unknown: string[] | undefined;
    const known = this.producer.currentMetadata?.topics;
    for (const { topic } of batches) {
      const n = known?.get(topic)?.partitionsCount;
      if (n) counts.set(topic, n);
      else (unknown ??= []).push(topic);
    }
    if (unknown) {
      const asked = await this.producer.metadata({ topics: unknown });
      for (const topic of unknown) {
        const n = asked.topics.get(topic)?.partitionsCount;
        // in the library's words for a topic the cluster does not have (faultsOf reads them)
        if (!n) throw Object.assign(new Error(`Unknown topic ${topic}.`), { code: 'PLT_KFK_USER' });
        counts.set(topic, n);
      }
    }
    return counts;
  }

  async reset(reconnect = true): Promise<void> {
    const old = this.producer;
    this.producer = this.make();
    this.connected = false;
    await old.close(true).catch(() => {});
    if (reconnect) await this.connect().catch(() => {}); // else the next write's connect() tries
  }

  async close(): Promise<void> {
    this.connected = false;
    await this.producer.close();
  }
}

class PlatformaticAdmin implements KafkaAdminPort {
  private admin: LibraryAdmin;
  private readonly make: () => LibraryAdmin;
  constructor(make: () => LibraryAdmin) {
    this.make = make;
    this.admin = make();
  }
  async connect(): Promise<void> {
    if (this.admin.closed) this.admin = this.make();
    await this.admin.metadata({ topics: [] });
  }
  listTopics(): Promise<string[]> {
    return this.admin.listTopics();
  }
  async hasTopic(topic: string): Promise<boolean> {
    try {
      const found = await this.admin.metadata({ topics: [topic], autocreateTopics: false, forceUpdate: true });
      return found.topics.has(topic);
    } catch (err) {
      // the library turns Kafka's UNKNOWN_TOPIC_OR_PARTITION for the topic asked into this
      let unknown = false;
      walk(err, (e) => {
        if ((e.code === 'PLT_KFK_USER' && e.message?.startsWith('Unknown topic ')) || e.apiId === 'UNKNOWN_TOPIC_OR_PARTITION') unknown = true;
      });
      if (unknown) return false;
      throw err;
    }
  }
  async createTopic(topic: string, partitions: number, replicationFactor: number): Promise<'created' | 'exists'> {
    try {
      await this.admin.createTopics({ topics: [topic], partitions, replicas: replicationFactor });
      await untilLeaders(async () => (await this.admin.metadata({ topics: [topic], forceUpdate: true })).topics.get(topic)?.partitions.map((p) => p.leader));
      return 'created';
    } catch (err) {
      let exists = false;
      walk(err, (e) => {
        if (e.apiId === 'TOPIC_ALREADY_EXISTS') exists = true;
      });
      if (exists) return 'exists';
      throw err;
    }
  }
  async disconnect(): Promise<void> {
    await this.admin.close().catch(() => {});
  }
}

/** The broker's error codes in the library's error tree. */
function faultsOf(err: unknown): BrokerFault[] {
  const found: BrokerFault[] = [];
  walk(err, (e) => {
    if (e.code === 'PLT_KFK_PROTOCOL' && typeof e.apiId === 'string') {
      found.push({ code: e.apiId, text: `${e.apiId}: ${e.serverErrorMessage ?? e.message}` });
    } else if (e.code === 'PLT_KFK_USER' && e.message?.startsWith('Unknown topic ')) {
      // the library's metadata step turns Kafka's UNKNOWN_TOPIC_OR_PARTITION into this, and
      // may name the wrong topic when several were asked for: the sink then tries each alone
      found.push({ code: 'UNKNOWN_TOPIC_OR_PARTITION', text: `UNKNOWN_TOPIC_OR_PARTITION: ${e.message}` });
    }
  });
  return found;
}

/** Answers that mean "ask again in a moment": a coordinator still loading or just moved. */
const coordinatorBusy = new Set(['COORDINATOR_LOAD_IN_PROGRESS', 'COORDINATOR_NOT_AVAILABLE', 'NOT_COORDINATOR']);

type Walked = {
  code?: string;
  apiId?: string;
  serverErrorMessage?: string | null;
  message?: string;
  errors?: unknown[];
  cause?: unknown;
  /** A produce response that carried an error (a ResponseError's). */
  response?: { responses?: Array<{ name: string; partitionResponses?: Array<{ index: number; errorCode: number }> }> };
  /** What a failed send wrote through the brokers that answered without error. */
  produced?: { offsets?: Array<{ topic: string; partition: number }> };
};

/** Each error of the tree: the library nests per-broker and per-partition errors in `errors`. */
function walk(err: unknown, visit: (e: Walked) => void, depth = 0): void {
  if (!err || typeof err !== 'object' || depth > 6) return;
  const e = err as Walked;
  visit(e);
  if (Array.isArray(e.errors)) for (const inner of e.errors) walk(inner, visit, depth + 1);
  if (e.cause) walk(e.cause, visit, depth + 1);
}

type ProducerMessage = MessageToProduce<Buffer, Buffer, Buffer, Buffer>;

/**
 * The messages for a send. `lean` (lean-records.ts in the produce requests): keys and header values as strings
 * and timestamps as numbers, which it writes in place (no Buffer per key and header value, no
 * BigInt per record); otherwise the library's own shapes, for its encoder (the stage bench
 * measures both).
 */
export function producerMessages(
  batches: readonly TopicBatch[],
  lean = false,
  placed?: { readonly partitioner: Partitioner; readonly counts: ReadonlyMap<string, number> },
): ProducerMessage[] {
  let n = 0;
  for (const b of batches) n += b.records.length;
  const messages = new Array<ProducerMessage>(n);
  const bytes = lean ? asGiven : toBuffer;
  let i = 0;
  for (const { topic, records } of batches) {
    const partitions = placed?.counts.get(topic);
    for (const r of records) {
      const headers = lean ? headerList(r.headers) : headerMap(r.headers, bytes);
      // one shape for every record (the library reads a missing key as undefined)
      messages[i++] = {
        topic,
        key: r.key === null ? undefined : lean ? r.key : Buffer.from(r.key),
        value: r.value,
        headers,
        timestamp: lean ? r.timestamp : BigInt(r.timestamp),
        partition: partitions === undefined ? undefined : (placed as NonNullable<typeof placed>).partitioner.of(topic, r.key, partitions),
      } as unknown as ProducerMessage;
    }
  }
  return messages;
}

function asGiven(v: string | Buffer): string | Buffer {
  return v;
}

/**
 * A record's headers as one flat list, [name, value, name, value, ...], for lean-records.ts: the
 * bundled library passes a list on as it is (scripts/bundle-kafka-client.ts), where it made two
 * Maps of every record's headers besides this one. A repeated header (an MQTT user property
 * given twice) is one Kafka header per value.
 */
function headerList(h: KafkaRecord['headers']): Array<string | Buffer> {
  // counted first: a list grown by push reserves 17 places for a record's usual two headers
  let n = 0;
  for (const name in h) {
    const v = h[name] as string | Buffer | Array<string | Buffer>;
    n += Array.isArray(v) ? 2 * v.length : 2;
  }
  const list = new Array<string | Buffer>(n);
  let i = 0;
  for (const name in h) {
    const v = h[name] as string | Buffer | Array<string | Buffer>;
    if (Array.isArray(v)) {
      for (const one of v) {
        list[i++] = headerName(name);
        list[i++] = one;
      }
    } else {
      list[i++] = headerName(name);
      list[i++] = v;
    }
  }
  return list;
}

/** The headers as the library's own encoder takes them: a Map, a repeated header under a name of its own object. */
function headerMap(h: KafkaRecord['headers'], bytes: (v: string | Buffer) => string | Buffer): Map<Buffer, string | Buffer> {
  const headers = new Map<Buffer, string | Buffer>();
  for (const name in h) {
    const v = h[name] as string | Buffer | Array<string | Buffer>;
    if (Array.isArray(v)) for (const one of v) headers.set(Buffer.from(name), bytes(one));
    else headers.set(headerName(name), bytes(v));
  }
  return headers;
}

/**
 * The records of a failed send on the partitions that answered without error: in the produce
 * responses the error carries (a partition's batch is written whole or not at all), and in what
 * the library reports as produced by the brokers whose requests succeeded.
 */
function writtenOf(err: unknown, batches: readonly TopicBatch[], messages: readonly ProducerMessage[]): Set<KafkaRecord> {
  const answered = new Set<string>();
  walk(err, (e) => {
    for (const t of e.response?.responses ?? []) for (const p of t.partitionResponses ?? []) if (p.errorCode === 0) answered.add(`${t.name}\n${p.index}`);
    for (const o of e.produced?.offsets ?? []) answered.add(`${o.topic}\n${o.partition}`);
  });
  const written = new Set<KafkaRecord>();
  if (answered.size === 0) return written;
  let i = 0;
  for (const { topic, records } of batches)
    for (const r of records) if (answered.has(`${topic}\n${(messages[i++] as ProducerMessage).partition}`)) written.add(r);
  return written;
}

/** Header names as bytes, made once: sluice's and the rules' names repeat on every record. */
const headerNames = new Map<string, Buffer>();
function headerName(name: string): Buffer {
  let b = headerNames.get(name);
  if (b === undefined) {
    b = Buffer.from(name);
    if (headerNames.size < 1000) headerNames.set(name, b); // user-property names are the devices': bounded
  }
  return b;
}

function toBuffer(v: string | Buffer): Buffer {
  return typeof v === 'string' ? Buffer.from(v) : v;
}

function saslOf(sasl: NonNullable<KafkaConnection['sasl']>): SASLOptions {
  if (sasl.mechanism === 'oauthbearer') return { mechanism: mechanisms.oauthbearer, token: () => sasl.token() };
  return { mechanism: mechanisms[sasl.mechanism], username: sasl.username, password: sasl.password };
}
