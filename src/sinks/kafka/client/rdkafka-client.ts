// The librdkafka adapter (node-rdkafka, an optional dependency built from source at install):
// record encoding, batching, compression and retries run in librdkafka's own threads, and the
// records wait in its C memory rather than in the V8 heap. Keys go to the same partitions as
// with the Java client (murmur2_random), so switching clients keeps each device on its partition.
// A send hands every record to librdkafka, then resolves when each one's delivery report came
// back without error; it rejects with every broker code the reports carried, marked with the
// records whose reports said written.
import { createRequire } from 'node:module';
import type { KafkaRecord } from '../kafka-record.ts';
import {
  type BrokerFault,
  type Compression,
  compressions,
  type KafkaAdminPort,
  type KafkaClient,
  type KafkaConnection,
  markWritten,
  type ProducerSession,
  type ProducerTuning,
  type TopicBatch,
  untilLeaders,
} from './kafka-client.ts';

/** What sluice uses of node-rdkafka (typed here, so the type check does not need it installed). */
interface RdError {
  readonly message: string;
  readonly code: number;
}
interface RdProducer {
  connect(options: { timeout: number }, cb: (err: RdError | null) => void): void;
  produce(
    topic: string,
    partition: null,
    value: Buffer,
    key: string | null,
    timestamp: number,
    opaque: Sent,
    headers?: Array<Record<string, string | Buffer>>,
  ): void;
  poll(): void;
  flush(timeout: number, cb: (err: RdError | null) => void): void;
  disconnect(timeout: number, cb: (err: RdError | null) => void): void;
  getMetadata(options: { timeout: number; allTopics?: boolean; topic?: string }, cb: (err: RdError | null, meta: RdMetadata) => void): void;
  on(event: 'event.error', listener: (err: RdError) => void): void;
  setOauthBearerToken(token: string): void;
}
interface RdMetadata {
  readonly topics: ReadonlyArray<{ readonly name: string; readonly partitions: ReadonlyArray<{ readonly leader: number }> }>;
}
interface RdAdmin {
  createTopic(topic: { topic: string; num_partitions: number; replication_factor: number }, timeout: number, cb: (err: RdError | null) => void): void;
  disconnect(): void;
}
interface RdModule {
  Producer: new (conf: Record<string, unknown>, topicConf?: Record<string, unknown>) => RdProducer;
  AdminClient: { create(conf: Record<string, unknown>, initialToken?: string): RdAdmin };
  librdkafkaVersion: string;
  features: string[];
}

let loaded: RdModule | undefined;

/** node-rdkafka, or an error that says how to get it. */
export function rdkafka(): RdModule {
  if (loaded) return loaded;
  try {
    loaded = createRequire(import.meta.url)('node-rdkafka') as RdModule;
    return loaded;
  } catch (err) {
    throw new Error(
      `kafka.client rdkafka needs node-rdkafka, an optional dependency that did not install (${(err as Error).message.split('\n')[0]}). ` +
        'It builds librdkafka from source during `npm install`: it needs gcc, g++, make and python3, and the Node headers ' +
        '(npm_config_nodedir); libssl-dev, libsasl2-dev and libzstd-dev add TLS, SASL and zstd. Or use kafka.client platformatic.',
    );
  }
}

/** Why node-rdkafka cannot be loaded here, or undefined when it can (tests and the bench skip it then). */
export function rdkafkaMissing(): string | undefined {
  try {
    rdkafka();
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

/** Kafka's protocol error codes (librdkafka reports them as they are) that the sink tells apart, by name. */
const protocolNames: Record<number, string> = {
  1: 'OFFSET_OUT_OF_RANGE',
  2: 'CORRUPT_MESSAGE',
  3: 'UNKNOWN_TOPIC_OR_PARTITION',
  5: 'LEADER_NOT_AVAILABLE',
  6: 'NOT_LEADER_OR_FOLLOWER',
  7: 'REQUEST_TIMED_OUT',
  8: 'BROKER_NOT_AVAILABLE',
  9: 'REPLICA_NOT_AVAILABLE',
  10: 'MESSAGE_TOO_LARGE',
  13: 'NETWORK_EXCEPTION',
  14: 'COORDINATOR_LOAD_IN_PROGRESS',
  15: 'COORDINATOR_NOT_AVAILABLE',
  16: 'NOT_COORDINATOR',
  17: 'INVALID_TOPIC_EXCEPTION',
  18: 'RECORD_LIST_TOO_LARGE',
  19: 'NOT_ENOUGH_REPLICAS',
  20: 'NOT_ENOUGH_REPLICAS_AFTER_APPEND',
  29: 'TOPIC_AUTHORIZATION_FAILED',
  31: 'CLUSTER_AUTHORIZATION_FAILED',
  32: 'INVALID_TIMESTAMP',
  36: 'TOPIC_ALREADY_EXISTS',
  44: 'POLICY_VIOLATION',
  45: 'OUT_OF_ORDER_SEQUENCE_NUMBER',
  46: 'DUPLICATE_SEQUENCE_NUMBER',
  47: 'INVALID_PRODUCER_EPOCH',
  56: 'KAFKA_STORAGE_ERROR',
  58: 'SASL_AUTHENTICATION_FAILED',
  59: 'UNKNOWN_PRODUCER_ID',
  74: 'FENCED_LEADER_EPOCH',
  75: 'UNKNOWN_LEADER_EPOCH',
  87: 'INVALID_RECORD',
};
/** librdkafka's own codes that stand for a broker's answer: the topic or partition is not in the cluster's metadata. */
const localAnswers: Record<number, string> = { [-188]: 'UNKNOWN_TOPIC_OR_PARTITION', [-190]: 'UNKNOWN_TOPIC_OR_PARTITION' };

/** A send that failed: the codes of every failed record (the first of each kind kept), and the words. */
export class RdkafkaSendError extends Error {
  readonly errors: readonly RdError[];
  constructor(errors: readonly RdError[], of: number) {
    super(`${errors.length === 1 ? '' : `${errors.length} kinds of failure among ${of} records: `}${errors.map((e) => e.message).join(' / ')}`);
    this.name = 'RdkafkaSendError';
    this.errors = errors;
  }
}

export class RdkafkaClient implements KafkaClient {
  readonly kind = 'rdkafka';
  private readonly connection: KafkaConnection;
  private readonly tuning: ProducerTuning;
  private readonly rd: RdModule;

  constructor(connection: KafkaConnection, tuning: ProducerTuning) {
    this.rd = rdkafka();
    this.connection = connection;
    this.tuning = tuning;
    const c = tuning.compression;
    if (c !== 'none' && !this.rd.features.includes(c))
      throw new Error(
        `kafka.compression ${c}: this build of librdkafka lacks it (it has ${this.rd.features.filter((f) => compressions.includes(f as Compression)).join(', ')}); ` +
          'install its library (for zstd: libzstd-dev) and run `npm rebuild node-rdkafka`, or choose another compression',
      );
  }

  session(purpose: 'main' | 'probe'): ProducerSession {
    const { idempotent, acks, compression, maxInFlightRequests } = this.tuning;
    const { requestTimeoutMs } = this.connection;
    const deliveryMs = purpose === 'probe' ? requestTimeoutMs : Math.max(2 * requestTimeoutMs, 10_000);
    return new RdkafkaSession(this.opener(), this.connection, deliveryMs, {
      'enable.idempotence': idempotent,
      acks,
      'compression.codec': compression,
      'max.in.flight.requests.per.connection': maxInFlightRequests,
      partitioner: 'murmur2_random',
      // sluice's queue has batched already: librdkafka sends at once (1 ms lets one send's
      // records share requests), and gives a record up after this long; the sink's queue then
      // retries with backoff on a new session, as with the other clients. A probe gives up sooner.
      'linger.ms': 1,
      'message.timeout.ms': deliveryMs,
      'request.timeout.ms': requestTimeoutMs,
      // a produce request's own network timeout (librdkafka's default is 60 s, whatever the above)
      'socket.timeout.ms': requestTimeoutMs,
      // what a record may weigh: the broker's own default limit (message.max.bytes + overhead)
      'message.max.bytes': 1_048_588,
    });
  }

  admin(): KafkaAdminPort {
    return new RdkafkaAdmin(this.opener(), this.connection.requestTimeoutMs);
  }

  faults(err: unknown): BrokerFault[] {
    const found: BrokerFault[] = [];
    for (const e of errorsOf(err)) {
      const code = protocolNames[e.code] ?? localAnswers[e.code];
      if (code !== undefined) found.push({ code, text: `${code}: ${e.message}` });
    }
    return found;
  }

  answered(err: unknown): boolean {
    return errorsOf(err).some((e) => e.code > 0 || localAnswers[e.code] !== undefined);
  }

  reason(err: unknown): string {
    const errors = errorsOf(err);
    const words = (e: RdError) => {
      const name = protocolNames[e.code] ?? localAnswers[e.code];
      return name ? `${name}: ${e.message}` : e.message;
    };
    return errors.length > 0 ? [...new Set(errors.map(words))].slice(0, 4).join(' / ') : String((err as Error)?.message ?? err);
  }

  /** Connection settings shared by producers and the admin client. */
  private common(): Record<string, unknown> {
    const { brokers, clientId, tls, sasl, connectTimeoutMs } = this.connection;
    const conf: Record<string, unknown> = {
      'metadata.broker.list': brokers.join(','),
      'client.id': clientId,
      'socket.connection.setup.timeout.ms': connectTimeoutMs,
      'socket.nagle.disable': true,
      // librdkafka logs to stderr by itself: errors reach sluice through the failed sends instead
      log_level: 0,
    };
    if (tls) {
      Object.assign(conf, {
        'security.protocol': sasl ? 'sasl_ssl' : 'ssl',
        ...(tls.ca ? { 'ssl.ca.pem': tls.ca } : {}),
        ...(tls.cert ? { 'ssl.certificate.pem': tls.cert } : {}),
        ...(tls.key ? { 'ssl.key.pem': tls.key } : {}),
        ...(tls.passphrase ? { 'ssl.key.password': tls.passphrase } : {}),
        'enable.ssl.certificate.verification': tls.rejectUnauthorized,
        // librdkafka checks the broker's name against its certificate only when asked (as the JS clients do)
        'ssl.endpoint.identification.algorithm': tls.rejectUnauthorized ? 'https' : 'none',
      });
    } else if (sasl) conf['security.protocol'] = 'sasl_plaintext';
    if (sasl?.mechanism === 'oauthbearer') conf['sasl.mechanisms'] = 'OAUTHBEARER';
    else if (sasl) Object.assign(conf, { 'sasl.mechanisms': sasl.mechanism.toUpperCase(), 'sasl.username': sasl.username, 'sasl.password': sasl.password });
    return conf;
  }

  /** Makes and connects librdkafka producers with these settings (an OAUTHBEARER token read for each, and again every minute). */
  private opener(): Opener {
    const sasl = this.connection.sasl;
    return new Opener(this.rd, this.common(), sasl?.mechanism === 'oauthbearer' ? sasl.token : undefined);
  }
}

/** librdkafka's topic-level producer properties that sluice sets. */
const topicProperties = new Set(['acks', 'partitioner', 'message.timeout.ms', 'request.timeout.ms']);

/** A token is set again this often on a long-lived producer (librdkafka asks for none by itself here). */
const tokenRefreshMs = 60_000;

class Opener {
  private readonly rd: RdModule;
  private readonly conf: Readonly<Record<string, unknown>>;
  readonly token: (() => Promise<string>) | undefined;

  constructor(rd: RdModule, conf: Record<string, unknown>, token: (() => Promise<string>) | undefined) {
    this.rd = rd;
    this.conf = conf;
    this.token = token;
  }

  /** A connected producer: connect() asks for the cluster's metadata, so a dead cluster fails here within `timeoutMs`. */
  async open(extra: Record<string, unknown>, timeoutMs: number): Promise<{ producer: RdProducer; stop: () => void }> {
    // node-rdkafka gives librdkafka a topic configuration of its own, which replaces the topic
    // properties set in the global one: the per-topic ones go there (else the partitioner,
    // acks and timeouts silently stay librdkafka's defaults)
    const global: Record<string, unknown> = { ...this.conf };
    const topic: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(extra)) (topicProperties.has(key) ? topic : global)[key] = value;
    const producer = new this.rd.Producer(global, topic);
    producer.on('event.error', () => {}); // a broker down is reported per record (delivery) and per connect
    let refresh: NodeJS.Timeout | undefined;
    if (this.token) {
      const token = this.token;
      producer.setOauthBearerToken(await token());
      refresh = setInterval(() => {
        token().then(
          (t) => producer.setOauthBearerToken(t),
          () => {}, // the last token stays; the broker says when it expired
        );
      }, tokenRefreshMs).unref();
    }
    const stop = () => clearInterval(refresh);
    await new Promise<void>((resolve, reject) =>
      producer.connect({ timeout: timeoutMs }, (err) => {
        if (!err) return resolve();
        stop();
        void disconnect(producer, 0);
        reject(new RdkafkaSendError([err], 0));
      }),
    );
    return { producer, stop };
  }

  /** The admin client (it connects by itself; it has its own token). */
  async admin(): Promise<RdAdmin> {
    return this.rd.AdminClient.create({ ...this.conf }, this.token ? await this.token() : undefined);
  }
}

/** Counts one send's delivery reports: done when every record has its report, or its session ended. */
interface Delivery {
  left: number;
  errors: RdError[] | undefined;
  readonly done: () => void;
}

/** One record handed to librdkafka: `written` once its report came back without error. */
interface Sent {
  readonly delivery: Delivery;
  readonly record: KafkaRecord;
  written: boolean;
}

/** A session replaced or closed while a send waited: its records' reports will never be polled. */
const sessionEnded: RdError = { code: -197, message: 'the producer session was replaced or closed before every record was acknowledged' };

class RdkafkaSession implements ProducerSession {
  private readonly opener: Opener;
  private readonly connection: KafkaConnection;
  private readonly config: Record<string, unknown>;
  /**
   * A send fails when its records are not all acknowledged by then. librdkafka's own message
   * timeout does not end a record that may have been written (a request that timed out): the
   * idempotent producer retries it for ever, and a frozen broker would hold the send, and the
   * sink's health, as long as it stays frozen.
   */
  private readonly deliveryMs: number;
  private producer: RdProducer | undefined;
  private stopProducer: (() => void) | undefined;
  private connecting: Promise<RdProducer> | undefined;
  /** Sends waiting for delivery reports: while any does, librdkafka is polled for them. */
  private readonly waiting = new Set<Delivery>();
  private poller: NodeJS.Timeout | undefined;

  constructor(opener: Opener, connection: KafkaConnection, deliveryMs: number, config: Record<string, unknown>) {
    this.opener = opener;
    this.connection = connection;
    this.deliveryMs = deliveryMs;
    this.config = config;
  }

  async connect(): Promise<void> {
    await this.connected();
  }

  private connected(): Promise<RdProducer> {
    if (this.producer) return Promise.resolve(this.producer);
    this.connecting ??= this.opener
      .open({ ...this.config, dr_cb: reported }, this.connection.connectTimeoutMs + this.connection.requestTimeoutMs)
      .then(({ producer, stop }) => {
        this.producer = producer;
        this.stopProducer = stop;
        return producer;
      })
      .finally(() => {
        this.connecting = undefined;
      });
    return this.connecting;
  }

  async send(batches: readonly TopicBatch[]): Promise<void> {
    const producer = await this.connected();
    let n = 0;
    for (const b of batches) n += b.records.length;
    const finished = Promise.withResolvers<void>();
    const delivery: Delivery = { left: n, errors: undefined, done: () => finished.resolve() };
    const sent: Sent[] = [];
    try {
      for (const { topic, records } of batches) {
        for (const r of records) {
          const one: Sent = { delivery, record: r, written: false };
          producer.produce(topic, null, r.value, r.key, r.timestamp, one, headersOf(r.headers));
          sent.push(one);
        }
      }
    } catch (err) {
      // refused before it left (too large, queue full): the records handed already (sent) still
      // get their reports; the send fails with this error beside theirs
      (delivery.errors ??= []).push(refusal(err));
      delivery.left -= n - sent.length;
      if (delivery.left === 0) delivery.done();
    }
    if (delivery.left > 0) {
      this.watch(delivery, true);
      const late = setTimeout(() => end(delivery, { code: -192, message: `not acknowledged within ${this.deliveryMs} ms` }), this.deliveryMs);
      await finished.promise.finally(() => {
        clearTimeout(late);
        this.watch(delivery, false);
      });
    }
    if (delivery.errors) {
      const err = new RdkafkaSendError(delivery.errors, n);
      markWritten(err, new Set(sent.filter((one) => one.written).map((one) => one.record)));
      throw err;
    }
  }

  /** Polls librdkafka for delivery reports while a send waits for them (every millisecond: the ack's latency). */
  private watch(delivery: Delivery, waits: boolean): void {
    if (waits) this.waiting.add(delivery);
    else this.waiting.delete(delivery);
    if (this.waiting.size > 0 && this.poller === undefined) {
      this.poller = setInterval(() => {
        try {
          this.producer?.poll();
        } catch {
          // disconnected meanwhile: reset() has failed the sends waiting on it
        }
      }, 1);
    } else if (this.waiting.size === 0 && this.poller !== undefined) {
      clearInterval(this.poller);
      this.poller = undefined;
    }
  }

  /** The sends still waiting fail (their reports are lost with the producer): the sink retries them on the next session. */
  private abandon(): void {
    for (const d of this.waiting) end(d, sessionEnded);
  }

  async reset(reconnect = true): Promise<void> {
    const old = this.producer;
    this.producer = undefined;
    this.stopProducer?.();
    if (old) await disconnect(old, 0);
    this.abandon();
    if (reconnect) await this.connected().catch(() => {}); // else the next write's connect() tries
  }

  async close(): Promise<void> {
    const old = this.producer;
    this.producer = undefined;
    this.stopProducer?.();
    // what is queued gets its chance to be written before the end: node-rdkafka's disconnect
    // flushes, and its flush serves the delivery reports itself. Never poll a producer while it
    // disconnects: a poll racing the native teardown crashed the process (SIGSEGV) in CI.
    if (old) await disconnect(old, this.connection.requestTimeoutMs);
    this.abandon();
  }
}

/** The report of one record: counted into its send, which finishes with the last one. */
function reported(err: RdError | null, report: { opaque: Sent }): void {
  const one = report.opaque;
  const d = one.delivery;
  if (d.left <= 0) return; // its send has ended already (its session was reset)
  if (err) {
    const e = withCode(err);
    d.errors ??= [];
    if (!d.errors.some((x) => x.code === e.code)) d.errors.push(e);
  } else one.written = true;
  if (--d.left === 0) d.done();
}

/** librdkafka's words for the protocol codes above, as node-rdkafka gives them in a delivery report. */
let codesByWords: Map<string, number> | undefined;

/**
 * A broker's refusal with its code: node-rdkafka gives it in a delivery report as code -1 and
 * librdkafka's words after their "Broker: " ("Broker: Message size too large" → "message size
 * too large"), so a record too large for its topic read as the cluster's failure and was retried
 * for ever. The words are librdkafka's own (err2str), read once.
 */
function withCode(err: RdError): RdError {
  if (err.code !== -1) return err;
  if (!codesByWords) {
    codesByWords = new Map();
    try {
      const { err2str } = createRequire(import.meta.url)('node-rdkafka/librdkafka') as { err2str(code: number): string };
      for (const code of Object.keys(protocolNames).map(Number)) {
        const words = err2str(code).split(': ')[1]; // as node-rdkafka splits them
        if (words) codesByWords.set(words.toLowerCase(), code);
      }
    } catch {
      // an older node-rdkafka without err2str: the code stays unknown (retried as the cluster's)
    }
  }
  const code = codesByWords.get(err.message);
  return code === undefined ? err : { code, message: err.message };
}

/** Ends a send before all its reports came: it fails with `why` (reports arriving later are ignored). */
function end(d: Delivery, why: RdError): void {
  if (d.left <= 0) return;
  (d.errors ??= []).push(why);
  d.left = 0;
  d.done();
}

function refusal(err: unknown): RdError {
  const e = err as Partial<RdError>;
  return typeof e.code === 'number' ? { code: e.code, message: String(e.message) } : { code: -196, message: String((err as Error)?.message ?? err) };
}

/** Headers as librdkafka takes them: one object per header, so a repeated name (an MQTT user property given twice) stays repeated. */
function headersOf(h: TopicBatch['records'][number]['headers']): Array<Record<string, string | Buffer>> {
  const out: Array<Record<string, string | Buffer>> = [];
  for (const name in h) {
    const v = h[name] as string | Buffer | Array<string | Buffer>;
    if (Array.isArray(v)) for (const one of v) out.push({ [name]: one });
    else out.push({ [name]: v });
  }
  return out;
}

/** Flushes what is queued for at most `flushMs`, then disconnects (node-rdkafka's disconnect flushes first). */
function disconnect(producer: RdProducer, flushMs: number): Promise<void> {
  return new Promise((resolve) => {
    try {
      producer.disconnect(flushMs, () => resolve());
    } catch {
      resolve(); // never connected, or gone already
    }
  });
}

class RdkafkaAdmin implements KafkaAdminPort {
  private readonly opener: Opener;
  private readonly timeoutMs: number;
  /** A producer only for metadata (node-rdkafka's admin client cannot list topics). */
  private metadata: { producer: RdProducer; stop: () => void } | undefined;
  private admin: RdAdmin | undefined;

  constructor(opener: Opener, timeoutMs: number) {
    this.opener = opener;
    this.timeoutMs = timeoutMs;
  }

  async connect(): Promise<void> {
    if (this.metadata) return;
    this.metadata = await this.opener.open({}, this.timeoutMs);
    this.admin = await this.opener.admin();
  }

  async listTopics(): Promise<string[]> {
    return (await this.meta()).topics.map((t) => t.name).filter((t) => !t.startsWith('__'));
  }

  async hasTopic(topic: string): Promise<boolean> {
    // librdkafka answers a missing topic with an entry that has no partitions
    return ((await this.meta(topic)).topics.find((t) => t.name === topic)?.partitions.length ?? 0) > 0;
  }

  async createTopic(topic: string, partitions: number, replicationFactor: number): Promise<'created' | 'exists'> {
    await this.connect();
    const admin = this.admin as RdAdmin;
    const err = await new Promise<RdError | null>((resolve) =>
      admin.createTopic({ topic, num_partitions: partitions, replication_factor: replicationFactor }, this.timeoutMs, resolve),
    );
    if (err?.code === 36) return 'exists';
    if (err) throw new RdkafkaSendError([err], 0);
    await untilLeaders(async () => (await this.meta(topic)).topics.find((x) => x.name === topic)?.partitions.map((p) => p.leader));
    return 'created';
  }

  async disconnect(): Promise<void> {
    const [metadata, admin] = [this.metadata, this.admin];
    this.metadata = undefined;
    this.admin = undefined;
    admin?.disconnect();
    metadata?.stop();
    if (metadata) await disconnect(metadata.producer, 0);
  }

  private async meta(topic?: string): Promise<RdMetadata> {
    await this.connect();
    const { producer } = this.metadata as NonNullable<typeof this.metadata>;
    return await new Promise<RdMetadata>((resolve, reject) =>
      producer.getMetadata({ timeout: this.timeoutMs, ...(topic ? { topic } : { allTopics: true }) }, (err, meta) =>
        err ? reject(new RdkafkaSendError([err], 0)) : resolve(meta),
      ),
    );
  }
}

function errorsOf(err: unknown): readonly RdError[] {
  if (err instanceof RdkafkaSendError) return err.errors;
  const e = err as Partial<RdError> | undefined;
  return e && typeof e.code === 'number' && typeof e.message === 'string' ? [e as RdError] : [];
}
