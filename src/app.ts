// The composition root: builds one worker (source -> pipeline -> sinks, the ack window closing
// the loop, metrics and HTTP at the edge) from a loaded config. No module-level state: a test
// can run several workers in one process. QoS 2 subscriptions get a connection of their own
// (the command connection), so its window, session and exactly-once state stand apart from
// telemetry's.
import { createPrivateKey, createPublicKey } from 'node:crypto';
import type { Server } from 'node:http';
import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import { AuditLog } from './audit/audit-log.ts';
import { ExactlyOnceLedger } from './audit/exactly-once-ledger.ts';
import { kafkaSasl, resolveSecret, type LoadedConfig } from './config/load.ts';
import { addressOf, startHttpServer } from './observability/http-server.ts';
import { createMetrics, type Metrics } from './observability/metrics.ts';
import { Pipeline } from './pipeline.ts';
import type { KafkaRecord } from './router/outputs.ts';
import { AuditSink } from './sinks/audit/audit-sink.ts';
import { BatchQueue } from './sinks/batch-queue.ts';
import { InfluxSink } from './sinks/influx/influx-sink.ts';
import { KafkaSink } from './sinks/kafka/kafka-sink.ts';
import { backoffMs } from './sinks/sink.ts';
import { MqttSource, type MqttSourceOptions } from './source/mqtt-source.ts';

export interface Worker {
  readonly metrics: Metrics;
  readonly source: MqttSource | undefined;
  readonly commandSource: MqttSource | undefined;
  readonly httpUrl: string;
  /** Graceful stop: stop reading, flush, ack, disconnect. Resolves to the number of acks left unsettled. */
  stop(): Promise<number>;
}

export interface WorkerOptions {
  readonly signal?: AbortSignal;
  /** The audit log failed to write or fsync: the process must stop now, acking nothing more. */
  readonly onFatal?: (err: Error) => void;
}

export async function startWorker(config: LoadedConfig, log: Logger, options: WorkerOptions = {}): Promise<Worker> {
  const s = config.service;
  const metrics = createMetrics(new Registry());
  const rules = config.rules;
  const telemetrySubscriptions = rules.subscriptions.filter((x) => x.qos < 2);
  const commandSubscriptions = rules.subscriptions.filter((x) => x.qos === 2);
  const commandsClientId = `${config.clientId}${s.mqtt.commands.clientIdSuffix}`;

  let fatal: Error | undefined;
  const onFatal = (err: Error) => {
    if (fatal) return;
    fatal = err;
    log.fatal({ err: err.message }, 'audit log failed: stopping without acknowledging anything more (never retried)');
    options.onFatal?.(err);
  };
  // The audit log first: a log that cannot be opened (damaged, locked) stops the start.
  let audit: { log: AuditLog; ledger: ExactlyOnceLedger | undefined; sink: AuditSink } | undefined;
  if (s.audit && rules.usesAudit) {
    const a = s.audit;
    const signing = a.signing && (() => {
      const privateKey = createPrivateKey(resolveSecret(a.signing.privateKey, 'audit.signing.privateKey'));
      return { privateKey, publicKey: createPublicKey(privateKey), every: a.signing.everyRecords, everyMs: a.signing.everyMs };
    })();
    const syncDelayMs = Number(process.env.SLUICE_TEST_AUDIT_SYNC_DELAY_MS ?? 0);
    const auditLog = await AuditLog.open(a.dir, {
      segmentBytes: a.segmentBytes,
      segmentMs: a.segmentMaxAgeMs,
      ...(signing ? { signing } : {}),
      ...(syncDelayMs > 0 ? { syncDelayMs } : {}),
      onFatal,
      onRepair: (segment, bytes) => log.warn({ segment, bytes }, 'audit log: cut a torn last record left by a crash (never acknowledged)'),
      onSegment: (segment) => {
        metrics.auditSegments.inc();
        log.info({ segment }, 'audit log: new segment');
      },
      onCheckpoint: () => metrics.auditCheckpoints.inc(),
    });
    auditLog.onSync = (seconds, records, bytes) => {
      metrics.auditFsync.observe(seconds);
      metrics.auditCommitSize.observe(records);
      metrics.auditRecords.inc(records);
      metrics.auditBytes.inc(bytes);
    };
    const ledger = commandSubscriptions.length > 0
      ? await ExactlyOnceLedger.open(a.dir, commandsClientId, { auditHead: () => auditLog.lastSeq, onFatal })
      : undefined;
    metrics.auditAwaitingRelease.set(ledger?.size ?? 0);
    log.info({ dir: a.dir, lastSeq: auditLog.lastSeq, awaitingRelease: ledger?.size ?? 0, signed: signing !== undefined }, 'audit log open');
    audit = { log: auditLog, ledger, sink: new AuditSink(auditLog, ledger, { commandsWorker: commandsClientId, publisherProperty: a.publisherProperty }, metrics) };
  }

  const kafka = new KafkaSink({
    brokers: s.kafka.brokers,
    clientId: s.kafka.clientId,
    ssl: s.kafka.ssl,
    sasl: kafkaSasl(s.kafka),
    compression: s.kafka.compression,
    createTopics: s.kafka.createTopics,
    maxTopics: s.kafka.maxTopics,
    deadLetterTopic: s.kafka.deadLetterTopic,
  }, log.child({ sink: 'kafka' }));
  // Kafka down at start: wait for it (not ready meanwhile) rather than crash-loop.
  for (let attempt = 0; ; attempt++) {
    try {
      await kafka.start();
      break;
    } catch (err) {
      if (options.signal?.aborted) throw err;
      const wait = backoffMs(attempt, 500, 10_000);
      log.error({ err: (err as Error).message, retryInMs: wait }, 'kafka not usable yet');
      await new Promise((r) => setTimeout(r, wait));
    }
  }
  const kafkaQueue = new BatchQueue<KafkaRecord>(kafka, {
    maxItems: s.kafka.batch.maxMessages, maxBytes: s.kafka.batch.maxBytes, lingerMs: s.kafka.batch.lingerMs,
  }, s.retry, log.child({ sink: 'kafka' }), metrics);

  let influxQueue: BatchQueue<string> | undefined;
  if (s.influx && config.rules.usesInflux) {
    const influx = new InfluxSink({
      url: s.influx.url,
      token: s.influx.token && resolveSecret(s.influx.token, 'influx.token'),
      org: s.influx.org,
      bucket: s.influx.bucket,
      timeoutMs: s.influx.timeoutMs,
    });
    influxQueue = new BatchQueue<string>(influx, {
      maxItems: s.influx.batch.maxPoints, maxBytes: 4_000_000, lingerMs: s.influx.batch.lingerMs,
    }, s.retry, log.child({ sink: 'influx' }), metrics);
  }

  const pipeline = new Pipeline(() => rules, { kafka: kafkaQueue, influx: influxQueue, audit: audit?.sink }, s.kafka.deadLetterTopic, metrics, log);
  const connection: Omit<MqttSourceOptions, 'clientId' | 'subscriptions' | 'receiveMaximum'> = {
    url: s.mqtt.url,
    group: s.mqtt.group,
    sessionExpiryInterval: s.mqtt.sessionExpiryInterval,
    keepalive: s.mqtt.keepalive,
    connectTimeoutMs: s.mqtt.connectTimeoutMs,
    reconnect: s.mqtt.reconnect,
    username: s.mqtt.username,
    password: s.mqtt.password && resolveSecret(s.mqtt.password, 'mqtt.password'),
    tls: s.mqtt.tls,
  };
  const source = telemetrySubscriptions.length === 0 ? undefined : new MqttSource({
    ...connection,
    clientId: config.clientId,
    subscriptions: telemetrySubscriptions,
    receiveMaximum: s.mqtt.receiveMaximum,
  }, (message, slot) => pipeline.dispatch(message, slot, config.clientId), log.child({ component: 'mqtt' }), metrics);
  const ledger = audit?.ledger;
  const auditSink = audit?.sink;
  const commandSource = commandSubscriptions.length === 0 ? undefined : new MqttSource({
    ...connection,
    clientId: commandsClientId,
    subscriptions: commandSubscriptions,
    receiveMaximum: s.mqtt.commands.receiveMaximum,
    gauges: { connected: metrics.commandsConnected, receiveMaximum: metrics.commandsReceiveMaximum },
    exactlyOnce: ledger && auditSink && {
      release: (packetId) => auditSink.release(packetId),
      sessionLost: () => {
        if (ledger.size > 0) log.warn({ awaitingRelease: ledger.size }, 'the broker kept no session for the command connection: its packet ids in flight are void');
        ledger.sessionLost();
      },
      gate: () => ledger.gate(),
    },
  }, (message, slot) => pipeline.dispatch(message, slot, commandsClientId), log.child({ component: 'mqtt-commands' }), metrics);
  const sources = [source, commandSource].filter((x) => x !== undefined);

  const inFlightTimer = setInterval(() => {
    if (source) {
      metrics.inFlight.set(source.window.inFlight);
      metrics.inFlightMax.set(source.window.highWater);
    }
    if (commandSource) {
      metrics.commandsInFlight.set(commandSource.window.inFlight);
      metrics.commandsInFlightMax.set(commandSource.window.highWater);
    }
  }, 250);
  inFlightTimer.unref();

  const http: Server = await startHttpServer(s.http.host, s.http.port, metrics.registry, {
    problems: () => {
      const p: string[] = [];
      if (fatal) p.push('audit: failed (stopping)');
      if (source && !source.connected) p.push('mqtt: not connected');
      if (commandSource && !commandSource.connected) p.push('mqtt commands: not connected');
      if (!kafkaQueue.healthy) p.push('kafka: last write failed');
      if (influxQueue && !influxQueue.healthy) p.push('influx: last write failed');
      return p;
    },
  });
  const httpUrl = addressOf(http);
  for (const x of sources) x.start();
  log.info({
    clientId: config.clientId, http: httpUrl, receiveMaximum: s.mqtt.receiveMaximum, routes: rules.routeNames,
    ...(commandSource ? { commandsClientId, commandsReceiveMaximum: s.mqtt.commands.receiveMaximum } : {}),
  }, 'sluice started');

  return {
    metrics,
    source,
    commandSource,
    httpUrl,
    async stop() {
      const started = Date.now();
      const inFlight = sources.reduce((n, x) => n + x.window.inFlight, 0);
      log.info({ inFlight, deadlineMs: s.shutdown.deadlineMs }, 'shutting down: no new messages, flushing');
      const left = await Promise.all(sources.map((x) => x.stop(s.shutdown.deadlineMs)));
      const unsettled = left.reduce((a, b) => a + b, 0);
      if (unsettled > 0) {
        metrics.unsettledAtShutdown.inc(unsettled);
        log.error({ unsettled, oldestMs: Math.max(...sources.map((x) => x.window.oldestAgeMs())) },
          'shutdown deadline passed with messages not yet durable: they stay unacked and the broker redelivers them');
      }
      kafkaQueue.close();
      influxQueue?.close();
      clearInterval(inFlightTimer);
      if (audit && !fatal) {
        await audit.ledger?.close();
        await audit.log.close();
      }
      await kafka.close();
      await new Promise((r) => http.close(r));
      log.info({ tookMs: Date.now() - started, unsettled }, 'stopped');
      return unsettled;
    },
  };
}
