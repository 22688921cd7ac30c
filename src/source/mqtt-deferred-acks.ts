// The one place sluice reaches into MQTT.js (pinned: mqtt 5.16.0; covered by
// test/source/mqtt-deferred-acks.test.ts). MQTT.js handles packets one at a time and sends a
// PUBACK right after handleMessage's callback. Here:
//  - handleMessage waits for room in the ack window, opens a slot, hands the message on and
//    lets the pump continue at once (many messages in flight, pipelined);
//  - the PUBACK MQTT.js then asks to send is taken and attached to the slot; the ack window
//    sends it when the sinks have the message durably, in arrival order;
//  - while the window is full the pump is held, so the socket is not read (TCP backpressure)
//    and the broker cannot push us past Receive Maximum even when it ignores it;
//  - a held pump cannot read the broker's PINGRESP, so a keepalive timeout during or right
//    after a hold sends another PINGREQ instead of tearing the connection down (the broker
//    still sees us alive); a dead peer shows as a socket error on those writes.
import type { IPublishPacket, MqttClient } from 'mqtt';
import type { AckSlot, AckWindow } from './ack-window.ts';

interface Internals {
  handleMessage(packet: IPublishPacket, callback: (err?: Error) => void): void;
  _sendPacket(packet: { cmd: string; messageId?: number }, cb?: (err?: Error) => void, cbStorePut?: unknown, noStore?: boolean): void;
  onKeepaliveTimeout(): void;
  sendPing(): void;
  keepaliveManager?: { reschedule(): void } | null;
  keepalive: number;
  connected: boolean;
}

export interface DeferredAckHooks {
  /** A message with its slot; must not throw. */
  onMessage(packet: IPublishPacket, slot: AckSlot): void;
  /** The pump was held because the window was full. */
  onStall?(): void;
  /** A keepalive timeout was answered with a PINGREQ because the pump was (recently) held. */
  onKeepaliveDuringStall?(): void;
  /** Whether new messages may still be taken (false while shutting down: they stay unacked). */
  accepting(): boolean;
}

/** Installs the hooks on a client created with `manualConnect` or before its first packet. */
export function installDeferredAcks(client: MqttClient, window: AckWindow, hooks: DeferredAckHooks): { sendAck(ack: unknown): void } {
  const c = client as unknown as Internals;
  const send = c._sendPacket.bind(c);
  const awaitingAck = new Map<number, AckSlot>();

  c.handleMessage = (packet, callback) => {
    if (!hooks.accepting()) return; // shutting down: hold the pump, leave the message unacked
    const connection = window.connection;
    const take = () => {
      // Woken because its connection dropped: not taken (the window may be full) and not acked
      // (MQTT.js would queue the PUBACK and send it on the next connection, where its packet id
      // can name another message). The broker redelivers it; the dead pump is dropped.
      if (!hooks.accepting() || window.connection !== connection) return;
      const slot = window.open();
      if (packet.qos > 0 && packet.messageId !== undefined) awaitingAck.set(packet.messageId, slot);
      hooks.onMessage(packet, slot);
      callback(); // QoS 1: MQTT.js now asks _sendPacket for the PUBACK (below); QoS 0: the pump moves on
    };
    if (window.full) {
      hooks.onStall?.();
      window.whenRoom(take);
    } else {
      take();
    }
  };

  c._sendPacket = (packet, cb, cbStorePut, noStore) => {
    if (packet.cmd === 'puback' && packet.messageId !== undefined) {
      const slot = awaitingAck.get(packet.messageId);
      if (slot) {
        awaitingAck.delete(packet.messageId);
        window.attach(slot, packet);
        cb?.(); // the pump continues; the PUBACK waits for the sinks
        return;
      }
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
    window.connectionLost();
  });

  return {
    sendAck(ack) {
      // Only reached for slots of the current connection (the window drops stale ones); still,
      // never hand MQTT.js an ack while offline: it would queue it and send it after a reconnect.
      if (c.connected) send(ack as { cmd: string });
    },
  };
}
