// The one place sluice reaches into MQTT.js (pinned: mqtt 5.16.0; covered by
// test/source/mqtt-deferred-acks.test.ts). What it does and why is in src/source/README.md (the
// ack window, QoS 2); what only this file shows is how: handleMessage waits for room in the
// window and lets the pump go on at once; the PUBACK or PUBREC MQTT.js then asks to send is taken
// and attached to the slot; a held pump cannot read PINGRESP, so a keepalive timeout during a
// hold sends another PINGREQ instead of tearing the connection down; for QoS 2, MQTT.js's count
// of exchanges waiting for PUBREL and its payload store are replaced, and PUBCOMP leaves only
// once the owner made the release durable (onRelease), in PUBREL order; a stop waits for the
// PUBRELs of what it PUBREC'd (releasesSettled). The PUBACKs, PUBRECs and
// PUBCOMPs released in one tick leave in one socket write (AckBatch below). A QoS 0 or 1 PUBLISH without
// a topic alias skips MQTT.js's handlePublish for a fast path that does what it would do here
// (patchPublishHandler below).
import { createRequire } from 'node:module';
import type { IPublishPacket, MqttClient } from 'mqtt';
import { monotonicMs } from '../../clock.ts';
import type { AckSlot, AckWindow } from '../ack-window.ts';

type Done = (err?: Error | null) => void;

type AckPacket = { cmd: string; messageId?: number; reasonCode?: number; properties?: unknown };

interface Internals {
  handleMessage(packet: IPublishPacket, callback: (err?: Error) => void): void;
  _sendPacket(packet: { cmd: string; messageId?: number }, cb?: (err?: Error) => void, cbStorePut?: unknown, noStore?: boolean): void;
  _trackIncomingQoS2Publish(messageId: number, done: Done, pump?: unknown): boolean;
  onKeepaliveTimeout(): void;
  sendPing(): void;
  keepaliveManager?: { reschedule(): void } | null;
  keepalive: number;
  connected: boolean;
  disconnecting: boolean;
  incomingStore: unknown;
  stream: { write(chunk: Buffer): boolean; destroyed?: boolean; writableEnded?: boolean };
  emit(event: 'packetsend', packet: unknown): boolean;
  emit(event: 'message', topic: string, payload: IPublishPacket['payload'], packet: IPublishPacket): boolean;
  listenerCount(event: string): number;
  options: {
    customHandleAcks?: (topic: string, message: Buffer, packet: IPublishPacket, done: (err: Error | number | null, code?: number) => void) => void;
    incomingStore?: unknown;
  };
}

/**
 * MQTT.js's incoming store keeps each QoS 2 PUBLISH (payload included) until PUBREL, to deliver
 * it then. sluice took the message at PUBLISH, so it keeps nothing: a PUBREL finds nothing
 * stored and MQTT.js answers it with a PUBCOMP, which the hook below holds until the release
 * is durable.
 */
const nothingStored = {
  put(_packet: unknown, cb?: Done) {
    cb?.();
    return nothingStored;
  },
  get(_packet: unknown, cb: (err: Error) => void) {
    cb(new Error('not kept: taken at PUBLISH'));
    return nothingStored;
  },
  del(_packet: unknown, cb?: Done) {
    cb?.();
    return nothingStored;
  },
  close(cb?: Done) {
    cb?.();
  },
  createStream() {
    throw new Error('nothingStored has no stream');
  },
};

export interface DeferredAckHooks {
  /** A message with its slot; must not throw. */
  onMessage(packet: IPublishPacket, slot: AckSlot): void;
  /** The pump was held because the window was full. */
  onStall?(): void;
  /** The message just taken filled the window: no other arrives until a slot settles. */
  onFull?(): void;
  /** A keepalive timeout was answered with a PINGREQ because the pump was (recently) held. */
  onKeepaliveDuringStall?(): void;
  /** Whether new messages may still be taken (false while shutting down: they stay unacked). */
  accepting(): boolean;
  /**
   * QoS 2: the broker released a packet id (PUBREL). Resolves when the release is durable; the
   * PUBCOMP waits for it. Absent: PUBCOMP at once.
   */
  onRelease?(messageId: number): Promise<void>;
  /** A promise to wait for before taking the next message (a durable session reset), or undefined. */
  gate?(): Promise<void> | undefined;
}

/** The first byte of the acks sent as bytes here (mqtt-packet's ACKS table: no flags). */
const ackType: Readonly<Record<string, number>> = { puback: 0x40, pubrec: 0x50, pubcomp: 0x70 };

/**
 * The PUBACKs, PUBRECs and PUBCOMPs released in one tick (a sink's batch settles a thousand at
 * once, a group commit of the audit log releases its PUBRELs' fifty), written as one buffer on
 * the next tick. MQTT.js writes each ack as three to five writes (type, length, packet id, for
 * its PUBCOMP a reason code and an empty property length too) under a cork that a nextTick of
 * its own lifts: a thousand acks were thousands of Writable writes and a writev of as many
 * chunks. The bytes are an ack with reason code 0 and no properties, both left out as MQTT 5
 * allows (3.1.1 has neither): type, remaining length 2, packet id. Any other ack, and any other
 * packet, goes through MQTT.js after the batch so far is written, so the order on the wire is
 * the order of release. `packetsend` is emitted for each ack as MQTT.js does. A batch whose
 * connection dropped, or was ended by a DISCONNECT, before its tick is not written: the broker
 * sends those messages (or PUBRELs) again.
 */
class AckBatch {
  private readonly c: Internals;
  private acks: AckPacket[] = [];
  private stream: Internals['stream'] | undefined;

  constructor(c: Internals) {
    this.c = c;
  }

  /** Whether `ack` is one this batch writes as bytes. */
  static plain(ack: AckPacket): boolean {
    return ackType[ack.cmd] !== undefined && typeof ack.messageId === 'number' && !ack.reasonCode && ack.properties === undefined;
  }

  add(ack: AckPacket): void {
    if (this.acks.length === 0) {
      this.stream = this.c.stream;
      process.nextTick(this.flush);
    }
    this.acks.push(ack);
  }

  /** Writes what was added (a no-op when nothing was). */
  readonly flush = (): void => {
    const acks = this.acks;
    if (acks.length === 0) return;
    this.acks = [];
    const stream = this.stream;
    this.stream = undefined;
    if (!this.c.connected || stream !== this.c.stream || stream === undefined || stream.destroyed || stream.writableEnded) return;
    const bytes = Buffer.allocUnsafe(acks.length * 4);
    for (let i = 0, at = 0; i < acks.length; i++, at += 4) {
      const ack = acks[i] as AckPacket;
      bytes[at] = ackType[ack.cmd] as number;
      bytes[at + 1] = 2;
      bytes.writeUInt16BE(ack.messageId as number, at + 2);
      this.c.emit('packetsend', ack);
    }
    stream.write(bytes);
  };
}

type FastPublish = (packet: IPublishPacket, done: () => void) => boolean;
type PublishHandler = (client: unknown, packet: IPublishPacket, done?: () => void, pump?: unknown) => void;

/** A client's fast path for PUBLISH (installDeferredAcks sets it): false when MQTT.js's own handling must run. */
const fastPublish = Symbol('sluice.fastPublish');
let fastPublishes = 0;
let publishHandlerPatched = false;

/** PUBLISH packets taken by the fast path since the process started (a test checks it is used). */
export function fastPublishCount(): number {
  return fastPublishes;
}

/**
 * MQTT.js's packet dispatch reads its publish handler from the handler module's exports at each
 * packet: it is replaced once with one that gives a client with a fast path its PUBLISH first.
 * Clients without one (the Sparkplug feed's, tap's) keep MQTT.js's handler.
 */
function patchPublishHandler(): void {
  if (publishHandlerPatched) return;
  publishHandlerPatched = true;
  const module = createRequire(import.meta.url)('mqtt/lib/handlers/publish') as { default: PublishHandler };
  const original = module.default;
  module.default = (client, packet, done, pump) => {
    const fast = (client as Record<symbol, FastPublish | undefined>)[fastPublish];
    if (fast === undefined || !fast(packet, done ?? noop)) original(client, packet, done, pump);
  };
}

function noop(): void {}

/** What the session drives: the acks the window releases, and the QoS 2 exchanges still open at a stop. */
export interface DeferredAcks {
  sendAck(ack: unknown): void;
  /**
   * Resolves, with how many are still open, once every QoS 2 exchange this connection
   * recorded (PUBREC written) is completed (PUBCOMP written), or can be no further here: the
   * connection is gone, or the pump is held by a PUBLISH (one that arrived while stopping, or
   * one waiting for room in the closed window), so the PUBRELs behind it cannot be read. Or
   * when `signal` aborts. For a stop, before DISCONNECT: an
   * exchange left open keeps its message at the broker until the session resumes.
   */
  releasesSettled(signal: AbortSignal): Promise<number>;
}

/** Installs the hooks on a client created with `manualConnect` or before its first packet. */
export function installDeferredAcks(client: MqttClient, window: AckWindow, hooks: DeferredAckHooks): DeferredAcks {
  const c = client as unknown as Internals;
  const batch = new AckBatch(c);
  const sendPacket = c._sendPacket.bind(c);
  // every packet MQTT.js writes for sluice leaves after the acks released before it
  const send: Internals['_sendPacket'] = (packet, cb, cbStorePut, noStore) => {
    batch.flush();
    sendPacket(packet, cb, cbStorePut, noStore);
  };
  // The slot whose PUBACK/PUBREC MQTT.js is about to ask for: it asks within the callback that
  // take() calls, so the slot waits in `asked` and the map holds only one it did not ask for
  // then (a Map that fills and empties per message reallocates its table: ~50 B a message).
  const awaitingAck = new Map<number, AckSlot>();
  let askedId = -1;
  let asked: AckSlot | undefined;
  // QoS 2 exchanges open on this connection: ids PUBREC'd whose PUBREL has not come, and PUBRELs
  // whose PUBCOMP waits for the release to be durable. A burst's PUBRELs trail its PUBRECs by
  // thousands (the broker sends them behind what it over-sent), so a stop waits for them.
  const awaitingRelease = new Set<number>();
  let releasing = 0;
  /** The pump is held by a PUBLISH that arrived while stopping: nothing behind it is read (window.stalled says the same of one waiting for room). */
  let heldAtStop = false;

  /**
   * Takes the message now: a slot, the ack awaited, the owner's hook, then the pump goes on.
   * `ackHere`: the PUBLISH came by the fast path (below), so the PUBACK MQTT.js would ask for is
   * made here and `callback` is MQTT.js's own done.
   */
  const take = (packet: IPublishPacket, callback: () => void, connection: number, ackHere: boolean) => {
    // Woken because its connection dropped: not taken (the window may be full) and not acked
    // (MQTT.js would queue the PUBACK and send it on the next connection, where its packet id
    // can name another message). The broker redelivers it; the dead pump is dropped.
    if (!hooks.accepting() || window.connection !== connection) return;
    const slot = window.open(monotonicMs(), packet.payload.length);
    hooks.onMessage(packet, slot);
    if (window.full) hooks.onFull?.();
    if (packet.qos === 0 || packet.messageId === undefined) {
      callback(); // the pump moves on
      return;
    }
    if (ackHere) {
      window.attach(slot, { cmd: 'puback', messageId: packet.messageId, reasonCode: 0 });
      callback();
      return;
    }
    askedId = packet.messageId;
    asked = slot;
    callback(); // MQTT.js now asks _sendPacket for the PUBACK/PUBREC (below)
    if (asked === slot) awaitingAck.set(packet.messageId, slot); // not asked yet: it will be
    asked = undefined;
  };
  const whenRoom = (packet: IPublishPacket, callback: () => void, connection: number, ackHere: boolean) => {
    if (window.held) {
      hooks.onStall?.();
      window.whenRoom(() => take(packet, callback, connection, ackHere));
    } else {
      take(packet, callback, connection, ackHere);
    }
  };

  /** Takes a message when there is room (QoS 0, 1 and 2 alike), then lets the pump go on; no closure unless it must wait. */
  const arrive = (packet: IPublishPacket, callback: () => void, ackHere = false) => {
    if (!hooks.accepting()) {
      // shutting down: hold the pump, leave the message unacked
      heldAtStop = true;
      return;
    }
    const connection = window.connection;
    const gate = hooks.gate?.();
    if (gate)
      void gate.then(
        () => whenRoom(packet, callback, connection, ackHere),
        () => {},
      ); // a failed gate is fatal to the owner: stay held
    else whenRoom(packet, callback, connection, ackHere);
  };

  c.handleMessage = (packet, callback) => arrive(packet, callback);

  // The PUBLISH fast path: what MQTT.js's handlePublish does for a QoS 0 or 1 PUBLISH without a
  // topic alias, with this hook's answers already known (customHandleAcks answers 0 at once),
  // without its two closures per message and the PUBACK's round through _sendPacket: the
  // 'message' event if anyone listens, then the message taken, its PUBACK attached to its slot.
  // QoS 2 and topic aliases take MQTT.js's own way.
  (c as unknown as Record<symbol, FastPublish>)[fastPublish] = (packet, done) => {
    if (packet.qos === 2 || packet.properties?.topicAlias !== undefined) return false;
    fastPublishes++;
    if (c.listenerCount('message') > 0) c.emit('message', packet.topic, packet.payload, packet);
    arrive(packet, done, packet.qos === 1);
    return true;
  };
  patchPublishHandler();

  // QoS 2 arrives here first (QoS 1 passes straight on to handleMessage above).
  c.options.customHandleAcks = (_topic, _message, packet, done) => {
    if (packet.qos !== 2) done(null, 0);
    else arrive(packet, () => done(null, 0));
  };
  // MQTT.js's own count of QoS 2 ids awaiting PUBREL disconnects past Receive Maximum; the ack
  // window bounds what matters (see the top), and a packet id waiting for PUBREL is cheap.
  c._trackIncomingQoS2Publish = () => true;
  c.options.incomingStore = nothingStored;
  c.incomingStore = nothingStored;

  /** An ack this file releases: in the tick's batch when it is plain, else through MQTT.js after it. */
  const write = (ack: AckPacket) => {
    if (AckBatch.plain(ack)) batch.add(ack);
    else send(ack);
  };
  let pubcomps: Promise<unknown> = Promise.resolve();
  c._sendPacket = (packet, cb, cbStorePut, noStore) => {
    if ((packet.cmd === 'puback' || packet.cmd === 'pubrec') && packet.messageId !== undefined) {
      let slot: AckSlot | undefined;
      if (asked !== undefined && askedId === packet.messageId) {
        slot = asked;
        asked = undefined;
      } else {
        slot = awaitingAck.get(packet.messageId);
        awaitingAck.delete(packet.messageId);
      }
      if (slot) {
        window.attach(slot, packet);
        cb?.(); // the pump continues; the PUBACK/PUBREC waits for the sinks
        return;
      }
    }
    if (packet.cmd === 'pubcomp' && packet.messageId !== undefined && hooks.onRelease) {
      const connection = window.connection;
      const durable = hooks.onRelease(packet.messageId);
      awaitingRelease.delete(packet.messageId);
      releasing++;
      const settled = () => releasing--;
      // in PUBREL order, each once its release is durable; never on a later connection (the
      // broker resends the PUBREL there and gets its PUBCOMP then), nor after DISCONNECT
      pubcomps = Promise.all([pubcomps, durable]).then(() => {
        if (c.connected && !c.disconnecting && window.connection === connection) write(packet);
        settled();
      }, settled); // a failed release is fatal to the owner: no PUBCOMP
      cb?.();
      return;
    }
    send(packet, cb, cbStorePut, noStore);
  };

  const keepaliveTimeout = c.onKeepaliveTimeout.bind(c);
  c.onKeepaliveTimeout = () => {
    if (c.connected && window.stalledWithin(c.keepalive * 1500)) {
      hooks.onKeepaliveDuringStall?.();
      c.keepaliveManager?.reschedule();
      c.sendPing();
      return;
    }
    keepaliveTimeout();
  };

  client.on('close', () => {
    awaitingAck.clear();
    asked = undefined;
    // a later connection gets the broker's PUBRELs again (the ledger answers them then)
    awaitingRelease.clear();
    heldAtStop = false;
    window.connectionLost();
  });

  const sendAck = (ack: unknown) => {
    // Only reached for slots of the current connection (the window drops stale ones); still,
    // never hand MQTT.js an ack while offline: it would queue it and send it after a reconnect.
    if (c.connected) write(ack as AckPacket);
  };
  return {
    // the command connection (the only one with releases) keeps count of its open exchanges
    sendAck: hooks.onRelease
      ? (ack) => {
          const a = ack as AckPacket;
          // a PUBREC with a failure reason code ends the exchange: no PUBREL comes
          if (c.connected && a.cmd === 'pubrec' && !((a.reasonCode ?? 0) >= 0x80)) awaitingRelease.add(a.messageId as number);
          sendAck(ack);
        }
      : sendAck,
    async releasesSettled(signal) {
      // PUBRELs still to come can be read only on this connection and with the pump moving;
      // polled as the window's drained() is (a stop is rare, and 10 ms is nothing to it)
      const more = () => c.connected && !heldAtStop && !window.stalled && awaitingRelease.size > 0;
      while (!signal.aborted && (releasing > 0 || more())) await new Promise((r) => setTimeout(r, 10));
      return awaitingRelease.size + releasing;
    },
  };
}
