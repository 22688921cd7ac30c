// One message's way through the sinks, and the fan-out rule, decided here and nowhere else:
//  - phase 0 outputs (the audit record) are written first; their annotations go to the rest;
//  - the message is done when every output has an outcome: the slowest decides;
//  - a rejection (and a refusal made while routing or encoding) becomes one dead letter with
//    every reason; the message is acknowledged once that is durable;
//  - a dead letter that cannot be written, or a fatal outcome anywhere, holds the ack: the
//    broker keeps the message (a fatal sink stops the worker).
// A delivery acts only through the steps it is given (DeliverySteps): it knows no pipeline.

import type { Levels } from '../mapping/template.ts';
import type { Message } from '../message.ts';
import type { Annotations, Outcome, OutcomeListener, Refusal } from '../outcome.ts';
import type { Match } from '../router/rule-set.ts';
import type { AckSlot } from '../source/ack-window.ts';
import type { BatchQueue } from './batch-queue.ts';

export interface DeliverySteps {
  /** Encodes the phase-1 outputs with phase 0's annotations and sends them (Delivery.send). */
  forward(delivery: Delivery, annotations: Annotations | undefined): void;
  /** Queues the dead letter; its outcome comes back to the delivery. */
  deadLetter(delivery: Delivery, refusals: readonly Refusal[]): void;
  /** Every output is durable (or dead-lettered durably): acknowledge. */
  acknowledged(delivery: Delivery, deadLettered: Refusal | undefined): void;
  /** The ack is withheld for good: a fatal sink, or a dead letter that could not be written. */
  withheld(delivery: Delivery, why: Outcome & { kind: 'fatal' | 'rejected' }): void;
}

type Stage = 'phase-0' | 'phase-1' | 'dead-letter' | 'done';

const noLevels: Levels = Object.freeze({});

export class Delivery implements OutcomeListener {
  readonly message: Message;
  readonly slot: AckSlot;
  /** The routes it matched, for the phase-1 encoding. */
  readonly matches: readonly Match[];
  /** The client id of the connection that took it. */
  readonly clientId: string;
  /** The payload's own time (ms), when an output read one: for end-to-end latency. */
  eventTimeMs: number | undefined;
  private readonly steps: DeliverySteps;
  private stage: Stage = 'phase-0';
  /** Outcomes still to come, plus one while outputs are being sent (an outcome told at once must not finish it early). */
  private waiting = 1;
  private refusals: Refusal[] | undefined;
  private annotations: Record<string, string> | undefined;
  private fatal: (Outcome & { kind: 'fatal' }) | undefined;

  /** `refusals`: made while routing. */
  constructor(message: Message, slot: AckSlot, clientId: string, matches: readonly Match[], refusals: Refusal[] | undefined, steps: DeliverySteps) {
    this.message = message;
    this.slot = slot;
    this.clientId = clientId;
    this.matches = matches;
    this.refusals = refusals;
    this.steps = steps;
  }

  get receivedMs(): number {
    return this.slot.openedAt;
  }

  /** Queues one output on its sink; the outcome comes back to decided(). */
  send<T>(queue: BatchQueue<T>, item: T): void {
    this.waiting++;
    queue.push(item, this);
  }

  /** Starts it: called once, after the phase-0 outputs were sent. */
  begin(): void {
    if (--this.waiting === 0) this.advance();
  }

  /** A refusal made while encoding an output. */
  refuse(refusal: Refusal): void {
    (this.refusals ??= []).push(refusal);
  }

  decided(outcome: Outcome): void {
    if (this.stage === 'done') return;
    if (this.stage === 'dead-letter') {
      this.stage = 'done';
      if (outcome.kind === 'delivered') this.steps.acknowledged(this, this.refusals?.[0]);
      else this.steps.withheld(this, outcome);
      return;
    }
    switch (outcome.kind) {
      case 'delivered':
        if (outcome.annotations) this.annotations = { ...this.annotations, ...outcome.annotations };
        break;
      case 'rejected':
        (this.refusals ??= []).push(outcome.refusal);
        break;
      case 'fatal':
        this.fatal ??= outcome;
        break;
    }
    if (--this.waiting === 0) this.advance();
  }

  /**
   * Every output is encoded: the decoded payload and the levels are let go. A message waiting
   * for its sinks then holds its bytes and its encoded outputs, not its parse as well, so what
   * survives a young-generation GC (and is promoted) while 1,000 messages are in flight shrinks.
   */
  private letGoOfParse(): void {
    for (const m of this.matches) {
      m.payload = undefined;
      m.levels = noLevels;
    }
  }

  private advance(): void {
    if (this.stage === 'phase-0') {
      this.stage = 'phase-1';
      if (!this.fatal) {
        this.waiting = 1;
        this.steps.forward(this, this.annotations);
        this.letGoOfParse();
        if (--this.waiting > 0) return;
      }
    }
    // every output has its outcome
    if (this.fatal) {
      this.stage = 'done';
      this.steps.withheld(this, this.fatal);
    } else if (this.refusals && this.refusals.length > 0) {
      this.stage = 'dead-letter';
      this.steps.deadLetter(this, this.refusals);
    } else {
      this.stage = 'done';
      this.steps.acknowledged(this, undefined);
    }
  }
}
