// The Sparkplug state feed: a connection of its own per worker, not in the share group, that
// sees every Sparkplug message in publish order. It writes nothing anywhere: it keeps the alias
// state (births, deaths) of every edge node, whichever worker the share group hands their data
// to, and follows seq on the whole stream (a worker's share of it has gaps by design). It also
// sends the rebirth requests (NCMD Node Control/Rebirth), at most one per edge node per interval.
import { createRequire } from 'node:module';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import { mqttServers } from '../addresses.ts';
import { monotonicMs } from '../clock.ts';
import { credentialOptions, type MqttCredentials } from '../mqtt-credentials.ts';
import { decodeSparkplug, decodeSparkplugHead } from './sparkplug-payload.ts';
import type { SparkplugState } from './sparkplug-state.ts';
import { parseSparkplugTopic, type SparkplugTopic, sparkplugNamespace } from './sparkplug-topic.ts';

export interface SparkplugFeedOptions extends MqttCredentials {
  readonly url: string;
  /** The failover URLs of the broker connection (mqtt.failover). */
  readonly failover?: readonly string[] | undefined;
  readonly keepalive: number;
  readonly connectTimeoutMs: number;
  readonly clientId: string;
  readonly state: SparkplugState;
  /** Minimum time between two rebirth requests to one edge node. */
  readonly rebirthIntervalMs: number;
  /**
   * sparkplug.rebirth: rebirth requests may be sent, and once subscribed the first time every
   * edge node of the saved state is asked (it may have been born again, with other aliases,
   * while this worker was down).
   */
  readonly rebirth: boolean;
  /** A rebirth request was sent (counted). */
  readonly onRebirthRequested?: (() => void) | undefined;
}

// Tahu's encoder, loaded by the first rebirth request (a worker without Sparkplug never loads it)
const require = createRequire(import.meta.url);
let encoder: { encodePayload(p: unknown): Uint8Array } | undefined;
const rebirthEncoder = () =>
  (encoder ??= (require('sparkplug-payload') as { get(namespace: string): unknown }).get(sparkplugNamespace) as { encodePayload(p: unknown): Uint8Array });

export class SparkplugFeed {
  private readonly client: MqttClient;
  private readonly options: SparkplugFeedOptions;
  private readonly log: Logger;
  private readonly asked = new Map<string, number>();
  private invalidLoggedAt = 0;
  private askedSaved = false;

  constructor(options: SparkplugFeedOptions, log: Logger) {
    this.options = options;
    this.log = log;
    const clientOptions: IClientOptions = {
      protocolVersion: 5,
      clientId: options.clientId,
      clean: true, // the state is in the worker's file, not in a broker session
      keepalive: options.keepalive,
      connectTimeout: options.connectTimeoutMs,
      reconnectPeriod: 1000,
      log: () => {},
      writeCache: false, // mqtt-packet's 65,536 cached packet-id Buffers, not made (mqtt-session.ts)
      properties: { sessionExpiryInterval: 0 },
      ...(options.failover && options.failover.length > 0 ? { servers: mqttServers(options.url, options.failover) } : {}),
      ...credentialOptions(options),
    };
    this.client = mqtt.connect(options.url, clientOptions);
    this.client.on('connect', () => {
      // QoS 1: a birth is not lost between broker and feed; the handler is synchronous, so the
      // PUBACK MQTT.js sends after it means the state has it
      this.client.subscribe(`${sparkplugNamespace}/#`, { qos: 1 }, (err) => {
        if (err) this.log.error({ err: err.message }, 'sparkplug state feed: subscribe failed');
        else this.log.info({ topic: `${sparkplugNamespace}/#` }, 'sparkplug state feed subscribed');
        if (!err && !this.askedSaved && this.options.rebirth) {
          this.askedSaved = true;
          for (const n of this.options.state.edgeNodes()) this.requestRebirth({ ...n, messageType: 'NCMD', device: '' });
        }
      });
    });
    this.client.on('error', (err) => this.log.warn({ err: err.message }, 'sparkplug state feed: connection error'));
    this.client.on('message', (topic, payload) => this.take(topic, payload));
  }

  get connected(): boolean {
    return this.client.connected;
  }

  /** Asks the edge node to publish its births again (sparkplug.rebirth only, at most once per rebirthIntervalMs). */
  requestRebirth(topic: SparkplugTopic, now = monotonicMs()): boolean {
    if (!this.options.rebirth) return false;
    const key = `${topic.group}/${topic.edgeNode}`;
    const last = this.asked.get(key);
    if (last !== undefined && now - last < this.options.rebirthIntervalMs) return false;
    this.asked.set(key, now);
    // the rate limit above is a duration (monotonic); the payload carries a time: wall clock, whole ms
    const payload = rebirthEncoder().encodePayload({ timestamp: Date.now(), metrics: [{ name: 'Node Control/Rebirth', type: 'Boolean', value: true }] });
    this.client.publish(`${sparkplugNamespace}/${topic.group}/NCMD/${topic.edgeNode}`, Buffer.from(payload), { qos: 0 });
    this.options.onRebirthRequested?.();
    this.log.info({ group: topic.group, edgeNode: topic.edgeNode }, 'asked an edge node for a rebirth (NCMD Node Control/Rebirth)');
    return true;
  }

  async stop(): Promise<void> {
    await this.client.endAsync();
  }

  private take(topicName: string, payload: Buffer): void {
    const topic = parseSparkplugTopic(topicName);
    if (typeof topic === 'string') return; // STATE and the like: not about edge nodes
    if (topic.messageType === 'NCMD' || topic.messageType === 'DCMD') return; // hosts' commands carry no seq of the node
    try {
      const state = this.options.state;
      if (topic.messageType === 'NDATA' || topic.messageType === 'DDATA') {
        const head = decodeSparkplugHead(payload);
        state.followData(topic, head.seq);
        state.fedTo(topic, head);
      } else {
        const decoded = decodeSparkplug(payload);
        state.observe(topic, decoded, true);
        state.fedTo(topic, decoded);
      }
    } catch (err) {
      const now = monotonicMs();
      if (now - this.invalidLoggedAt >= 10_000) {
        this.invalidLoggedAt = now;
        this.log.warn({ topic: topicName, err: (err as Error).message }, 'sparkplug state feed: not a Sparkplug B payload (the data path dead-letters it)');
      }
    }
  }
}
