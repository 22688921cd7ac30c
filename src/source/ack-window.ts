// The ack window closes the loop from the sinks back to the broker: every message gets a slot
// in arrival order; a slot settles when every sink holds the message durably; acks leave in
// arrival order (MQTT 5 §4.6), and never more than `capacity` messages are in flight. A slot
// from a connection that has since dropped still counts until it settles, but its ack is never
// sent: the broker redelivers that message and its packet id may already name another one.
import { monotonicMs } from '../clock.ts';

/** The acknowledgement handle that travels with a message. settle() is idempotent. */
export interface AckSlot {
  /** When the message arrived, on the monotonic clock (clock.ts). */
  readonly openedAt: number;
  settle(): void;
}

export interface AckWindowEvents {
  /** Sends the ack of a released slot (in arrival order, current connection only). */
  release(ack: unknown): void;
  /** A slot of an earlier connection settled; its ack was dropped. */
  dropped?(): void;
}

class Slot implements AckSlot {
  settled = false;
  /** What release() sends: a PUBACK packet; null for QoS 0. Attached right after open(). */
  ack: unknown = null;
  readonly window: AckWindow;
  readonly generation: number;
  readonly openedAt: number;
  /** The payload's bytes, counted against the window's byte capacity until released. */
  readonly bytes: number;
  constructor(window: AckWindow, generation: number, openedAt: number, bytes: number) {
    this.window = window;
    this.generation = generation;
    this.openedAt = openedAt;
    this.bytes = bytes;
  }
  settle(): void {
    if (this.settled) return;
    this.settled = true;
    this.window.onSettled();
  }
}

export class AckWindow {
  readonly capacity: number;
  /** Payload bytes in flight at most (the message that crosses it is still taken). */
  readonly byteCapacity: number;
  private readonly events: AckWindowEvents;
  private bytes = 0;
  /** Slots in arrival order; those before `head` are released (undefined: let go of). */
  private readonly queue: Array<Slot | undefined> = [];
  private head = 0;
  private generation = 0;
  private waiters: Array<() => void> = [];
  private stalledSinceMs: number | undefined;
  private lastStallEndMs = 0;
  private closed = false;
  /** The most messages ever in flight at once: the bound the tests hold us to. */
  highWater = 0;
  /** Slots opened so far (messages taken): a leaving session waits until it stops moving. */
  opened = 0;

  constructor(capacity: number, events: AckWindowEvents, byteCapacity = Infinity) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new Error(`ack window capacity must be >= 1, got ${capacity}`);
    if (!(byteCapacity >= 1)) throw new Error(`ack window byte capacity must be >= 1, got ${byteCapacity}`);
    this.capacity = capacity;
    this.byteCapacity = byteCapacity;
    this.events = events;
  }

  /** Bumped on every lost connection. */
  get connection(): number {
    return this.generation;
  }

  /** Messages handed to the pipeline and not yet released. */
  get inFlight(): number {
    return this.queue.length - this.head;
  }

  /** Payload bytes of the messages in flight. */
  get inFlightBytes(): number {
    return this.bytes;
  }

  get full(): boolean {
    return this.inFlight >= this.capacity || this.bytes >= this.byteCapacity;
  }

  /** No room is given now: full, or closed (paused, shutting down). */
  get held(): boolean {
    return this.closed || this.full;
  }

  /** Whether a pump waits for room now (until there is some, or after close() until resume()): nothing behind it is read. */
  get stalled(): boolean {
    return this.stalledSinceMs !== undefined;
  }

  /** Whether the pump is held now, or was within `withinMs` (a PINGRESP may sit unread behind it). */
  stalledWithin(withinMs: number, now = monotonicMs()): boolean {
    return this.stalledSinceMs !== undefined || now - this.lastStallEndMs < withinMs;
  }

  /** A slot for a message that just arrived, with its payload's size. */
  open(now = monotonicMs(), bytes = 0): Slot {
    const slot = new Slot(this, this.generation, now, bytes);
    this.opened++;
    this.bytes += bytes;
    this.queue.push(slot);
    if (this.inFlight > this.highWater) this.highWater = this.inFlight;
    return slot;
  }

  /** Attaches the ack to send when the slot is released (the PUBACK MQTT.js built for it). */
  attach(slot: AckSlot, ack: unknown): void {
    (slot as Slot).ack = ack;
  }

  /** Calls `resume` once there is room for another message: now, or when a slot is released. */
  whenRoom(resume: () => void, now = monotonicMs()): void {
    if (!this.full && !this.closed) {
      resume();
      return;
    }
    if (this.stalledSinceMs === undefined) this.stalledSinceMs = now;
    this.waiters.push(resume);
  }

  /**
   * The connection dropped: the acks of the open slots must never be sent (see the top), and a
   * held pump belongs to a dead stream, so it is let go.
   */
  connectionLost(): void {
    this.generation++;
    this.wakeAll();
  }

  /** No more room is given (pause, shutdown); held pumps stay held until resume(). */
  close(): void {
    this.closed = true;
  }

  /** Gives room again after close(): a pump held meanwhile goes on. */
  resume(): void {
    this.closed = false;
    if (!this.full && this.waiters.length > 0) this.wakeAll();
  }

  /** Resolves when every open slot has settled (shutdown drains with this). */
  async drained(signal?: AbortSignal): Promise<void> {
    while (this.inFlight > 0) {
      if (signal?.aborted) return;
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /** Oldest unsettled slot's age, for metrics and the shutdown report. */
  oldestAgeMs(now = monotonicMs()): number {
    const slot = this.queue[this.head];
    return slot ? now - slot.openedAt : 0;
  }

  onSettled(): void {
    let released = false;
    while (this.head < this.queue.length) {
      const slot = this.queue[this.head] as Slot;
      if (!slot.settled) break;
      // let go of it now: a released slot kept until the next compaction (a second at 1,000
      // msg/s) outlives two young-generation GCs and is promoted, with its ack
      this.queue[this.head] = undefined;
      this.head++;
      this.bytes -= slot.bytes;
      released = true;
      if (slot.generation !== this.generation) this.events.dropped?.();
      else if (slot.ack !== null) this.events.release(slot.ack);
    }
    if (!released) return;
    // compact now and then instead of shifting per message
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
    if (!this.full && !this.closed && this.waiters.length > 0) this.wakeAll();
  }

  private wakeAll(): void {
    if (this.stalledSinceMs !== undefined) {
      this.stalledSinceMs = undefined;
      this.lastStallEndMs = monotonicMs();
    }
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}
