// The port between the broker and the pipeline: a session hands over messages, each with its
// ack slot (ack-window.ts), never more than its window's capacity in flight, and sends the
// acks in arrival order as the slots settle. The MQTT.js adapter (mqtt/mqtt-session.ts) is its
// one implementation; test/support/fake-session.ts is an in-memory one for the pipeline's
// unit tests.
import type { Message } from '../message.ts';
import type { AckSlot, AckWindow } from './ack-window.ts';

/** Called once per message taken; must not throw. */
export type MessageHandler = (message: Message, slot: AckSlot) => void;

/**
 * Called when the session stops taking messages because its window is full: none arrives
 * until one settles, so whatever waits for more to fill a batch should go now. Must not throw.
 */
export type WindowFullHandler = () => void;

/**
 * QoS 2 state kept durably by the session's owner (the audit log's exactly-once ledger):
 * what the command connection reports, and waits for.
 */
export interface Qos2Hooks {
  /** PUBREL: resolves once the release is durable; the PUBCOMP waits for it. */
  release(packetId: number): Promise<void>;
  /** CONNACK without our session: every packet id the broker had in flight is void. */
  sessionLost(): void;
  /** While a session reset is being made durable, no message may be taken. */
  gate(): Promise<void> | undefined;
}

export interface Session {
  /** The client id: stable per worker, so a restart resumes the broker's session. */
  readonly clientId: string;
  /** In flight, its bound and its high-water mark. */
  readonly window: AckWindow;
  readonly connected: boolean;
  /** Starts taking messages (and reconnecting until stop()). */
  start(onMessage: MessageHandler, onWindowFull?: WindowFullHandler): void;
  /** Takes no new message until resume(); what is in flight still settles and is acked. */
  pause(): void;
  resume(): void;
  /**
   * Stops taking messages, waits (up to the deadline) until every message taken is durable and
   * acked, then disconnects with the session kept. Resolves to the acks left unsettled.
   * `leave`: the worker goes for good, so it first leaves its share group (unsubscribes, takes
   * what the broker still holds for it) and ends its session; if it cannot in time, it keeps it.
   */
  stop(deadlineMs: number, leave?: boolean): Promise<number>;
}
