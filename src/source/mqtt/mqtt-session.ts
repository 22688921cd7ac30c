// The MQTT 5 session (the Session port's adapter over MQTT.js): one connection per worker with a persistent session (Clean Start false,
// Session Expiry > 0, stable client id) so a restarted worker resumes and the broker redelivers
// whatever was not acked; the rules' filters subscribed as $share/<group>/<filter>; Receive
// Maximum advertised and enforced by the ack window. After a lost connection the first attempts
// come fast (jittered), then with exponential backoff and full jitter; every CONNACK re-sends
// the subscriptions at once (a restarted Mosquitto matches its restored shared subscriptions to
// nothing until a member subscribes again, so this gap is where it loses messages). An outage
// logs one warning when it starts, a reminder a minute and one line when it ends.
// QoS 2 subscriptions get a session of their own (the command connection, see app.ts) whose
// releases and session losses are reported to its Qos2Hooks (the exactly-once ledger).
import { setTimeout as sleep } from 'node:timers/promises';
import mqtt, { type IClientOptions, type IPublishPacket, type MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import { mqttServers } from '../../addresses.ts';
import { backoffMs } from '../../backoff.ts';
import { monotonicMs } from '../../clock.ts';
import type { Message, MqttProperties } from '../../message.ts';
import { credentialOptions, type MqttCredentials } from '../../mqtt-credentials.ts';
import type { Metrics } from '../../observability/metrics.ts';
import { AckWindow } from '../ack-window.ts';
import type { MessageHandler, Qos2Hooks, Session, WindowFullHandler } from '../session.ts';
import { type DeferredAcks, installDeferredAcks } from './deferred-acks.ts';
import { leanBufferList } from './lean-bl.ts';

leanBufferList(); // mqtt-packet's integer, string and payload reads without a Buffer each

export interface MqttSessionOptions {
  readonly url: string;
  /** More URLs of the same broker service: each attempt after a lost connection goes to the next (url first). */
  readonly failover?: readonly string[] | undefined;
  readonly clientId: string;
  readonly group: string;
  readonly subscriptions: ReadonlyArray<{ readonly filter: string; readonly qos: 0 | 1 | 2 }>;
  readonly sessionExpiryInterval: number;
  readonly receiveMaximum: number;
  /** Payload bytes in flight at most (the ack window holds the socket past it). */
  readonly maxInFlightBytes?: number | undefined;
  readonly keepalive: number;
  readonly connectTimeoutMs: number;
  readonly reconnect: { readonly fastMs: number; readonly fastForMs: number; readonly minMs: number; readonly maxMs: number };
  readonly username?: MqttCredentials['username'];
  readonly password?: MqttCredentials['password'];
  readonly tls?: MqttCredentials['tls'];
  /** QoS 2 state kept durably by the owner (the audit log's exactly-once ledger). */
  readonly exactlyOnce?: Qos2Hooks | undefined;
  /** The gauges of this connection (the command connection has its own). */
  readonly gauges?: { readonly connected: { set(v: number): void }; readonly receiveMaximum: { set(v: number): void } } | undefined;
}

export class MqttSession implements Session {
  readonly window: AckWindow;
  private readonly client: MqttClient;
  private readonly acks: DeferredAcks;
  private readonly options: MqttSessionOptions;
  private readonly log: Logger;
  private accepting = true;
  /** The outage under way: since when, attempts so far, the last connect error. */
  private outage: { since: number; attempts: number; lastError?: string; remindedAt: number } | undefined;
  /** A socket error just before the connection closed: told in the lost-connection line. */
  private socketError: string | undefined;
  /** Connections made so far, and the last of them whose SUBSCRIBE the broker answered. */
  private connectedAt = 0;
  private subscribedAt = 0;
  /** Filters the broker granted a lower QoS than asked (warned once each). */
  private readonly downgraded = new Set<string>();
  /** The filters subscribed on every CONNACK; a rules reload changes them on the live connection. */
  private subscriptions: ReadonlyArray<{ readonly filter: string; readonly qos: 0 | 1 | 2 }>;
  private onMessage: MessageHandler = () => {};
  private onWindowFull: WindowFullHandler | undefined;

  constructor(options: MqttSessionOptions, log: Logger, metrics: Metrics) {
    this.options = options;
    this.log = log;
    this.subscriptions = options.subscriptions;
    let sendAck: (ack: unknown) => void = () => {};
    // labelled children looked up once: prom-client hashes the labels on every inc() otherwise
    const receivedByQos: Array<ReturnType<typeof metrics.received.labels>> = [];
    this.window = new AckWindow(
      options.receiveMaximum,
      {
        release: (ack) => sendAck(ack),
        dropped: () => metrics.staleAcksDropped.inc(),
      },
      options.maxInFlightBytes ?? Infinity,
    );
    const gauges = options.gauges ?? { connected: metrics.connected, receiveMaximum: metrics.receiveMaximum };
    gauges.receiveMaximum.set(options.receiveMaximum);

    this.client = mqtt.connect(options.url, this.clientOptions());
    this.acks = installDeferredAcks(this.client, this.window, {
      accepting: () => this.accepting,
      onMessage: (packet, slot) => {
        (receivedByQos[packet.qos] ??= metrics.received.labels(String(packet.qos))).inc();
        this.onMessage(messageOf(packet), slot);
      },
      onStall: () => metrics.stalls.inc(),
      onFull: () => this.onWindowFull?.(),
      ...(options.exactlyOnce ? { onRelease: options.exactlyOnce.release, gate: options.exactlyOnce.gate } : {}),
      onKeepaliveDuringStall: () => {
        metrics.keepaliveDuringStall.inc();
        log.debug('keepalive timeout while the socket was held: sent another PINGREQ');
      },
    });
    sendAck = this.acks.sendAck;

    this.client.on('connect', (connack) => {
      gauges.connected.set(1);
      this.connectedAt++;
      const present = connack.sessionPresent;
      metrics.sessionsResumed.inc({ present: String(present) });
      if (!present) options.exactlyOnce?.sessionLost();
      // Always, not only without a session: a filter added to the rules since the session was
      // made must be subscribed too, a restarted broker may have restored its shared
      // subscriptions without matching them, and re-subscribing an existing one changes nothing.
      this.subscribe();
      const outage = this.outage;
      this.outage = undefined;
      this.client.options.reconnectPeriod = this.nextAttemptMs(undefined);
      if (outage) {
        log.info(
          { url: this.broker(), sessionPresent: present, outageMs: monotonicMs() - outage.since, attempts: outage.attempts, lastError: outage.lastError },
          'reconnected to the broker',
        );
      } else {
        log.info({ clientId: options.clientId, url: this.broker(), sessionPresent: present }, 'connected to the broker');
      }
    });
    this.client.on('close', () => {
      gauges.connected.set(0);
      const now = monotonicMs();
      if (!this.outage) {
        this.outage = { since: now, attempts: 0, remindedAt: now };
        if (this.accepting)
          log.warn(
            { url: this.broker(), inFlight: this.window.inFlight, ...(this.socketError ? { cause: this.socketError } : {}) },
            'broker connection lost; reconnecting',
          );
        this.socketError = undefined;
      } else if (now - this.outage.remindedAt >= 60_000) {
        this.outage.remindedAt = now;
        log.warn(
          { url: options.url, outageMs: now - this.outage.since, attempts: this.outage.attempts, lastError: this.outage.lastError },
          'broker still unreachable; reconnecting',
        );
      }
      this.client.options.reconnectPeriod = this.nextAttemptMs(this.outage);
    });
    this.client.on('reconnect', () => {
      metrics.reconnects.inc();
      if (this.outage) this.outage.attempts++;
    });
    this.client.on('error', (err) => {
      const fields = { err: { message: err.message, code: (err as { code?: unknown }).code } };
      // a refused attempt during an outage is that outage's detail, not a line of its own
      if (this.outage) {
        this.outage.lastError = err.message;
        log.debug(fields, 'mqtt connect attempt failed');
      } else if (socketErrorCodes.has(String((err as { code?: unknown }).code))) {
        // the connection is going: the lost-connection line that follows names this
        this.socketError = err.message;
        log.debug(fields, 'mqtt socket error');
      } else {
        log.warn(fields, 'mqtt error');
      }
    });
    this.client.on('disconnect', (packet) => log.warn({ reasonCode: packet.reasonCode }, 'broker sent DISCONNECT'));
  }

  /**
   * The wait before the next attempt: about fastMs during the first fastForMs of an outage,
   * then exponential backoff with full jitter, so a fleet does not reconnect in step.
   */
  private nextAttemptMs(outage: { since: number; attempts: number } | undefined): number {
    const r = this.options.reconnect;
    if (!outage || monotonicMs() - outage.since < r.fastForMs) return Math.max(1, Math.round(r.fastMs * (0.5 + Math.random())));
    const fastAttempts = Math.ceil(r.fastForMs / r.fastMs);
    return backoffMs(Math.max(0, outage.attempts - fastAttempts), r.minMs, r.maxMs);
  }

  get clientId(): string {
    return this.options.clientId;
  }

  /** Starts connecting (and reconnecting until stop()). */
  start(onMessage: MessageHandler, onWindowFull?: WindowFullHandler): void {
    this.onMessage = onMessage;
    this.onWindowFull = onWindowFull;
    this.client.connect();
  }

  get connected(): boolean {
    return this.client.connected;
  }

  /** Connected and the broker answered this connection's SUBSCRIBE: messages published now reach the share group through it. */
  get subscribed(): boolean {
    return this.client.connected && this.subscribedAt === this.connectedAt;
  }

  pause(): void {
    this.window.close();
  }

  resume(): void {
    if (this.accepting) this.window.resume();
  }

  async stop(deadlineMs: number, leave = false): Promise<number> {
    const abort = AbortSignal.timeout(deadlineMs);
    const left = leave && (await this.leaveGroup(abort));
    this.accepting = false;
    this.window.close();
    await this.window.drained(abort);
    const unsettled = this.window.inFlight;
    // QoS 2: the PUBCOMPs of what was recorded, so the broker holds none of it for this session
    const open = await this.acks.releasesSettled(abort);
    if (open > 0)
      this.log.info(
        { clientId: this.options.clientId, open },
        'QoS 2 exchanges left open at stop: recorded, their PUBCOMP not sent; the broker sends their PUBREL again when this session resumes',
      );
    // the released PUBACKs are written before DISCONNECT (one ordered stream); a worker that left
    // its group with nothing in flight ends its session (MQTT 5 lets DISCONNECT lower the expiry to 0)
    const endSession = left && unsettled === 0;
    await this.disconnect(endSession ? { properties: { sessionExpiryInterval: 0 } } : {});
    if (endSession) this.log.info({ clientId: this.options.clientId }, 'left the share group: session ended');
    else if (leave)
      this.log.warn(
        { clientId: this.options.clientId, unsettled },
        'could not leave the share group in time: session kept, so a worker with this client id can still take what it holds',
      );
    return unsettled;
  }

  /**
   * Sends DISCONNECT and closes the connection. MQTT.js's end() waits for the socket to close,
   * which needs the broker's end of stream read; but a stopped worker leaves unread what the
   * broker sent after it stopped taking messages (a backlog fills the socket), so the close
   * never comes. After `closeWaitMs` the socket is destroyed: the DISCONNECT is written by then,
   * and what was left unread is unacked, so the broker sends it again.
   */
  private async disconnect(opts: { properties?: { sessionExpiryInterval: number } }): Promise<void> {
    const ended = this.client.endAsync(false, opts).then(
      () => true,
      () => false,
    );
    const closed = () => Promise.race([ended, sleep(closeWaitMs, false, { ref: false })]);
    if (await closed()) return;
    this.client.stream?.destroy();
    await closed();
  }

  /**
   * Leaves the share group for good: unsubscribes every filter (the broker hands this session
   * nothing new), then keeps taking what the broker had already queued for it until nothing is
   * in flight and nothing has arrived for `leaveQuietMs`. True when that happened before `abort`;
   * false (the session must be kept) when the broker was unreachable or the queue did not empty.
   */
  private async leaveGroup(abort: AbortSignal): Promise<boolean> {
    const topics = this.subscriptions.map((s) => `$share/${this.options.group}/${s.filter}`);
    this.subscriptions = []; // a reconnect meanwhile must not join again
    if (!this.client.connected) {
      this.log.warn({ clientId: this.options.clientId }, 'leaving the share group: not connected to the broker, so it cannot unsubscribe');
      return false;
    }
    const started = monotonicMs();
    try {
      // UNSUBACK reason codes: 0 and 0x11 (no subscription existed) leave; 0x80 and above did not
      const unsuback = topics.length === 0 ? undefined : await Promise.race([this.client.unsubscribeAsync(topics), aborted(abort)]);
      const refused = ((unsuback as { granted?: number[] } | undefined)?.granted ?? []).filter((code) => code >= 0x80);
      if (refused.length > 0) throw new Error(`the broker refused to unsubscribe (reason codes ${refused.join(', ')})`);
    } catch (err) {
      this.log.warn({ clientId: this.options.clientId, err: (err as Error).message }, 'leaving the share group: unsubscribe failed');
      return false;
    }
    this.log.info(
      { clientId: this.options.clientId, topics, inFlight: this.window.inFlight },
      'leaving the share group: unsubscribed; taking what the broker still holds for this worker',
    );
    for (;;) {
      const seen = this.window.opened;
      try {
        await sleep(leaveQuietMs, undefined, { signal: abort });
      } catch {
        return false;
      }
      if (this.window.opened === seen && this.window.inFlight === 0 && this.client.connected) {
        this.log.info(
          { clientId: this.options.clientId, tookMs: Math.round(monotonicMs() - started), taken: this.window.opened },
          'left the share group: nothing more queued',
        );
        return true;
      }
    }
  }

  /**
   * New filters (a rules reload): the added ones (or with another QoS) are subscribed and the
   * removed ones unsubscribed on the live connection, without reconnecting; the next CONNACK
   * subscribes the new list anyway.
   */
  updateSubscriptions(next: ReadonlyArray<{ readonly filter: string; readonly qos: 0 | 1 | 2 }>): { added: string[]; removed: string[] } {
    const before = new Map(this.subscriptions.map((x) => [x.filter, x.qos]));
    const after = new Map(next.map((x) => [x.filter, x.qos]));
    const added = next.filter((x) => before.get(x.filter) !== x.qos);
    const removed = [...before.keys()].filter((f) => !after.has(f));
    this.subscriptions = next;
    const shared = (filter: string) => `$share/${this.options.group}/${filter}`;
    for (const f of removed) this.downgraded.delete(shared(f));
    if (this.client.connected) {
      if (added.length > 0) this.subscribe(added);
      if (removed.length > 0) {
        this.client.unsubscribe(removed.map(shared), (err) => {
          if (err) this.log.error({ err: err.message, topics: removed.map(shared) }, 'unsubscribe failed');
          else for (const f of removed) this.log.info({ topic: shared(f) }, 'unsubscribed');
        });
      }
    }
    return { added: added.map((x) => x.filter), removed };
  }

  private subscribe(which: ReadonlyArray<{ readonly filter: string; readonly qos: 0 | 1 | 2 }> = this.subscriptions): void {
    const connection = this.connectedAt;
    if (which.length === 0) {
      this.subscribedAt = connection;
      return;
    }
    const topics = Object.fromEntries(which.map((s) => [`$share/${this.options.group}/${s.filter}`, { qos: s.qos }]));
    this.client.subscribe(topics, (err, granted) => {
      if (err) {
        this.log.error({ err: err.message }, 'subscribe failed');
        return;
      }
      this.subscribedAt = Math.max(this.subscribedAt, connection);
      for (const g of granted ?? []) {
        if (g.qos >= 0x80) this.log.error({ topic: g.topic, reasonCode: g.qos }, 'the broker refused a subscription');
        else this.log.info({ topic: g.topic, qos: g.qos }, 'subscribed');
        const asked = this.subscriptions.find((x) => `$share/${this.options.group}/${x.filter}` === g.topic)?.qos;
        if (asked !== undefined && g.qos < asked && !this.downgraded.has(g.topic)) {
          this.downgraded.add(g.topic);
          this.log.warn(
            { topic: g.topic, asked, granted: g.qos },
            asked === 2
              ? 'the broker granted QoS 1 for a QoS 2 subscription: its commands arrive at least once, not exactly once; give the route an audit idempotencyKey'
              : 'the broker granted a lower QoS than asked',
          );
        }
      }
    });
  }

  /** The broker of the current (or last) connection: with a failover list, the one MQTT.js took. */
  private broker(): string {
    if (!this.options.failover?.length) return this.options.url;
    const o = this.client.options;
    return `${o.protocol}://${o.hostname}:${o.port}`;
  }

  private clientOptions(): IClientOptions {
    const o = this.options;
    const options: IClientOptions = {
      protocolVersion: 5,
      clientId: o.clientId,
      clean: false,
      keepalive: o.keepalive,
      connectTimeout: o.connectTimeoutMs,
      reconnectPeriod: o.reconnect.fastMs,
      resubscribe: false, // we subscribe on every CONNACK ourselves
      manualConnect: true, // the ack hook must be in place before the first packet
      log: () => {}, // MQTT.js formats a debug line per packet otherwise (3% of CPU under load)
      // mqtt-packet otherwise makes a 2-byte Buffer for each of the 65,536 packet ids at the first
      // packet it writes and keeps them for the process's life: 65,536 objects, ~7 MiB of live
      // heap that every full GC marks. sluice writes its PUBACKs and PUBRECs itself
      // (deferred-acks.ts); MQTT.js's few other packets with an id make their 2 bytes when sent.
      // (The setting is mqtt-packet's, for the whole process: any client made with it turns it off.)
      writeCache: false,
      properties: { sessionExpiryInterval: o.sessionExpiryInterval, receiveMaximum: o.receiveMaximum },
      ...(o.failover && o.failover.length > 0 ? { servers: mqttServers(o.url, o.failover) } : {}),
    };
    return { ...options, ...credentialOptions(o) };
  }
}

/**
 * How long a leaving worker waits with nothing in flight and nothing arriving before it takes
 * the broker's queue for its session to be empty: the broker sends what it queued as soon as
 * acks make room, so any wait far above a round trip will do.
 */
export const leaveQuietMs = 1000;

/** How long a stopping worker waits for its connection to close after DISCONNECT before it closes the socket itself. */
const closeWaitMs = 1000;

/** Rejects when `signal` aborts. */
function aborted(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    if (signal.aborted) reject(new Error('shutdown deadline passed'));
    else signal.addEventListener('abort', () => reject(new Error('shutdown deadline passed')), { once: true });
  });
}

/** Errors of a socket that is going away (a close follows). */
const socketErrorCodes = new Set(['EPIPE', 'ECONNRESET', 'ETIMEDOUT', 'ECONNABORTED', 'EHOSTUNREACH', 'ENETUNREACH']);

const noProperties: MqttProperties = Object.freeze({});

/** A PUBLISH as sluice's message: one object shape for every message (the hot path stays monomorphic). */
export function messageOf(packet: IPublishPacket): Message {
  return {
    topic: packet.topic,
    payload: Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload),
    qos: packet.qos,
    retain: packet.retain,
    properties: (packet.properties ?? noProperties) as MqttProperties,
    receivedAt: Date.now(),
    packetId: packet.messageId,
    dup: packet.dup === true,
  };
}
