// The composition root: builds one worker (source -> pipeline -> sinks, the ack window closing
// the loop, metrics and HTTP at the edge) from a loaded config. No module-level state: a test
// can run several workers in one process.
import type { Server } from 'node:http';
import type { SASLOptions } from 'kafkajs';
import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import { resolveSecret, type LoadedConfig } from './config/load.ts';
import { addressOf, startHttpServer } from './observability/http-server.ts';
import { createMetrics, type Metrics } from './observability/metrics.ts';
import { Pipeline } from './pipeline.ts';
import type { KafkaRecord } from './router/outputs.ts';
import { BatchQueue } from './sinks/batch-queue.ts';
import { InfluxSink } from './sinks/influx/influx-sink.ts';
import { KafkaSink } from './sinks/kafka/kafka-sink.ts';
import { backoffMs } from './sinks/sink.ts';
import { MqttSource } from './source/mqtt-source.ts';

export interface Worker {
  readonly metrics: Metrics;
  readonly source: MqttSource;
  readonly httpUrl: string;
  /** Graceful stop: stop reading, flush, ack, disconnect. Resolves to the number of acks left unsettled. */
  stop(): Promise<number>;
}

export async function startWorker(config: LoadedConfig, log: Logger, options: { signal?: AbortSignal } = {}): Promise<Worker> {
  const s = config.service;
  const metrics = createMetrics(new Registry());

  const kafka = new KafkaSink({
    brokers: s.kafka.brokers,
    clientId: s.kafka.clientId,
    ssl: s.kafka.ssl,
    sasl: s.kafka.sasl && {
      mechanism: s.kafka.sasl.mechanism,
      username: s.kafka.sasl.username,
      password: resolveSecret(s.kafka.sasl.password, 'kafka.sasl.password'),
    } as SASLOptions, // a union by mechanism, which TypeScript cannot narrow from our enum
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

  const rules = config.rules;
  const pipeline = new Pipeline(() => rules, { kafka: kafkaQueue, influx: influxQueue }, s.kafka.deadLetterTopic, metrics, log);
  const source = new MqttSource({
    url: s.mqtt.url,
    clientId: config.clientId,
    group: s.mqtt.group,
    subscriptions: rules.subscriptions,
    sessionExpiryInterval: s.mqtt.sessionExpiryInterval,
    receiveMaximum: s.mqtt.receiveMaximum,
    keepalive: s.mqtt.keepalive,
    connectTimeoutMs: s.mqtt.connectTimeoutMs,
    reconnect: s.mqtt.reconnect,
    username: s.mqtt.username,
    password: s.mqtt.password && resolveSecret(s.mqtt.password, 'mqtt.password'),
    tls: s.mqtt.tls,
  }, (message, slot) => pipeline.dispatch(message, slot), log.child({ component: 'mqtt' }), metrics);

  const inFlightTimer = setInterval(() => {
    metrics.inFlight.set(source.window.inFlight);
    metrics.inFlightMax.set(source.window.highWater);
  }, 250);
  inFlightTimer.unref();

  const http: Server = await startHttpServer(s.http.host, s.http.port, metrics.registry, {
    problems: () => {
      const p: string[] = [];
      if (!source.connected) p.push('mqtt: not connected');
      if (!kafkaQueue.healthy) p.push('kafka: last write failed');
      if (influxQueue && !influxQueue.healthy) p.push('influx: last write failed');
      return p;
    },
  });
  const httpUrl = addressOf(http);
  source.start();
  log.info({ clientId: config.clientId, http: httpUrl, receiveMaximum: s.mqtt.receiveMaximum, routes: rules.routeNames }, 'sluice started');

  return {
    metrics,
    source,
    httpUrl,
    async stop() {
      const started = Date.now();
      log.info({ inFlight: source.window.inFlight, deadlineMs: s.shutdown.deadlineMs }, 'shutting down: no new messages, flushing');
      const unsettled = await source.stop(s.shutdown.deadlineMs);
      if (unsettled > 0) {
        metrics.unsettledAtShutdown.inc(unsettled);
        log.error({ unsettled, oldestMs: source.window.oldestAgeMs() },
          'shutdown deadline passed with messages not yet durable: they stay unacked and the broker redelivers them');
      }
      kafkaQueue.close();
      influxQueue?.close();
      clearInterval(inFlightTimer);
      await kafka.close();
      await new Promise((r) => http.close(r));
      log.info({ tookMs: Date.now() - started, unsettled }, 'stopped');
      return unsettled;
    },
  };
}
