// An in-memory Session (src/source/session.ts) for the pipeline's unit tests: a broker queue
// that the session drains only while its ack window has room, and a record of the acks it
// sent, in order. Same window code as the MQTT adapter; no sockets, so a test runs in
// milliseconds.
import type { Message } from '../../src/message.ts';
import { AckWindow } from '../../src/source/ack-window.ts';
import type { MessageHandler, Session, WindowFullHandler } from '../../src/source/session.ts';

export class FakeSession implements Session {
  readonly clientId: string;
  readonly window: AckWindow;
  /** Packet ids of the acks sent, in the order sent. */
  readonly acks: number[] = [];
  connected = true;
  private readonly queue: Message[] = [];
  private onMessage: MessageHandler | undefined;
  private onWindowFull: WindowFullHandler | undefined;
  private paused = false;
  private waiting = false;
  private nextPacketId = 1;

  constructor(receiveMaximum: number, clientId = 'fake-worker') {
    this.clientId = clientId;
    this.window = new AckWindow(receiveMaximum, { release: (ack) => this.acks.push(ack as number) });
  }

  /** Messages the broker holds for us and has not sent yet. */
  get queued(): number {
    return this.queue.length;
  }

  /** The broker gets a message for this session; it gets a packet id when it has none. */
  publish(message: Omit<Message, 'receivedAt' | 'packetId'> & { packetId?: number }): number {
    const packetId = message.packetId ?? this.nextPacketId++;
    this.queue.push({ ...message, packetId, receivedAt: Date.now() });
    this.pump();
    return packetId;
  }

  start(onMessage: MessageHandler, onWindowFull?: WindowFullHandler): void {
    this.onMessage = onMessage;
    this.onWindowFull = onWindowFull;
    this.pump();
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    this.pump();
  }

  async stop(deadlineMs: number): Promise<number> {
    this.paused = true;
    await this.window.drained(AbortSignal.timeout(deadlineMs));
    this.connected = false;
    return this.window.inFlight;
  }

  private pump(): void {
    while (this.onMessage && !this.paused && this.queue.length > 0) {
      if (this.window.full) {
        if (!this.waiting) {
          this.waiting = true;
          this.window.whenRoom(() => {
            this.waiting = false;
            this.pump();
          });
        }
        return;
      }
      const message = this.queue.shift() as Message;
      const slot = this.window.open();
      this.window.attach(slot, message.qos > 0 ? message.packetId : null);
      this.onMessage(message, slot);
      if (this.window.full) this.onWindowFull?.();
    }
  }
}
