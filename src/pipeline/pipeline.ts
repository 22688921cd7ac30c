// source -> router -> sinks -> settle: each message is routed, its outputs encoded by the
// sinks' compilers and queued on their sinks, and its ack slot settled once the fan-out rule
// (delivery.ts) says so. What the rules or a sink refuse goes to the dead-letter sink first, so
// a message is acked only when it is durable somewhere: nothing silent, nothing lost.
import type { Logger } from 'pino';
import { monotonicMs } from '../clock.ts';
import type { Message } from '../message.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { Annotations, Outcome, Refusal } from '../outcome.ts';
import type { MatchInput, RouteOutput } from '../router/route-output.ts';
import type { Match, Routed, RouteOptions, RuleSet } from '../router/rule-set.ts';
import type { DeadLetterItem } from '../sinks/sink.ts';
import type { AckSlot } from '../source/ack-window.ts';
import type { BatchQueue } from './batch-queue.ts';
import { Delivery, type DeliverySteps } from './delivery.ts';
import { encodes } from './encode.ts';

export interface PipelineOptions {
  /** The rules in force (read per message). */
  readonly rules: () => RuleSet;
  /** The queue of every sink a route writes to, by sink name. */
  readonly queues: ReadonlyMap<string, BatchQueue<unknown>>;
  /** Where refused messages go: every worker has one (docs/rules.md, the dead letter). */
  readonly deadLetters: BatchQueue<DeadLetterItem>;
  readonly metrics: Metrics;
  readonly log: Logger;
  /** A sink turned fatal: the worker must stop, acking nothing more. */
  readonly onFatal?: (err: Error) => void;
  /** What routing needs from outside the rules (Sparkplug's alias state): absent, the rules alone. */
  readonly hook?: RoutingHook | undefined;
}

/**
 * A protocol's state that routing reads (Sparkplug: the aliases its births defined), and a wait
 * it may ask for: a message whose refusal may still resolve (a birth on its way) is routed
 * again later, holding the acks behind it (they leave in arrival order).
 */
export interface RoutingHook {
  /** The options of the first routing of a message, and of a routing again after a wait (made once). */
  readonly first: RouteOptions;
  readonly again: RouteOptions;
  /**
   * How long to hold the message before routing it again, or undefined to go on with what it
   * has (its refusals stand). `waitedMs` is -1 on the first routing.
   */
  holdFor(message: Message, matches: Routed['matches'], waitedMs: number): number | undefined;
}

export class Pipeline implements DeliverySteps {
  private readonly options: PipelineOptions;
  private readonly deadLetters: BatchQueue<DeadLetterItem>;
  private readonly metrics: Metrics;
  private readonly log: Logger;
  /** The routed counter of each compiled output (one route, one sink), found by the object: no key string per message. */
  private readonly routedCounters = new WeakMap<RouteOutput, { inc(): void }>();
  private fatal = false;
  /** Acks withheld for a refused dead letter are logged at most every 10 s, with how many since. */
  private withheldLoggedAt = 0;
  private withheldSinceLog = 0;
  /** Per route, its messages not yet acknowledged, oldest first (a Set keeps insertion order). */
  private readonly unacked = new Map<string, Set<Delivery>>();

  constructor(options: PipelineOptions) {
    this.options = options;
    this.deadLetters = options.deadLetters;
    this.metrics = options.metrics;
    this.log = options.log;
  }

  /**
   * `clientId`: the client id of the connection that took the message (audit records name it);
   * `waitedMs`: how long the hook has held it (>= 0: routed again).
   */
  dispatch(message: Message, slot: AckSlot, clientId = '', waitedMs = -1): void {
    let routed: Routed;
    const hook = this.options.hook;
    try {
      routed = this.options.rules().route(message, Date.now(), hook && (waitedMs >= 0 ? hook.again : hook.first));
    } catch (err) {
      // a bug, not bad input: still never a crash or a silent drop
      this.log.error({ err, topic: message.topic }, 'routing threw; dead-lettering the message');
      routed = { outcome: 'routed', matches: [], refusals: [{ reason: 'mapping', stage: 'route', error: `internal error: ${(err as Error).message}` }] };
    }
    if (routed.outcome !== 'routed') {
      (routed.outcome === 'expired' ? this.metrics.expired : this.metrics.unmatchedDropped).inc();
      this.metrics.acked.inc();
      slot.settle();
      return;
    }
    const hold = hook?.holdFor(message, routed.matches, waitedMs);
    if (hold !== undefined) {
      setTimeout(() => this.dispatch(message, slot, clientId, Math.max(waitedMs, 0) + hold), hold);
      return;
    }
    let refusals: Refusal[] | undefined = routed.refusals.length > 0 ? [...routed.refusals] : undefined;
    for (const m of routed.matches) if (m.problem) (refusals ??= []).push(m.problem);
    const delivery = new Delivery(message, slot, clientId, routed.matches, refusals, this);
    for (const m of routed.matches) this.unackedOf(m.route).add(delivery);
    this.send(delivery, 0, undefined);
    delivery.begin();
  }

  /**
   * A connection's ack window is full: no message arrives on it until one settles, so the
   * batches waiting out their linger are written now instead of holding the window shut.
   */
  windowFull(): void {
    for (const queue of this.options.queues.values()) queue.flushWaiting();
    this.deadLetters.flushWaiting();
  }

  forward(delivery: Delivery, annotations: Annotations | undefined): void {
    this.send(delivery, 1, annotations);
  }

  deadLetter(delivery: Delivery, refusals: readonly Refusal[]): void {
    delivery.send(this.deadLetters, { message: delivery.message, refusals });
  }

  acknowledged(delivery: Delivery, deadLettered: Refusal | undefined): void {
    for (const m of delivery.matches) this.unacked.get(m.route)?.delete(delivery);
    if (deadLettered) this.metrics.deadLettered.inc({ reason: deadLettered.reason });
    delivery.slot.settle();
    this.metrics.acked.inc();
    this.metrics.ackLatency.observe((monotonicMs() - delivery.slot.openedAt) / 1000);
    // the payload's own time is wall time: compared with the wall clock
    if (delivery.eventTimeMs !== undefined) this.metrics.endToEnd.observe(Math.max(0, Date.now() - delivery.eventTimeMs) / 1000);
  }

  withheld(delivery: Delivery, why: Outcome & { kind: 'fatal' | 'rejected' }): void {
    if (why.kind === 'fatal') {
      if (!this.fatal) {
        this.fatal = true;
        this.options.onFatal?.(why.error);
      }
      return;
    }
    // the dead-letter topic refused even the shrunk record: keep the message at the broker
    this.metrics.deadLettered.inc({ reason: 'dead-letter-refused' });
    this.withheldSinceLog++;
    const now = monotonicMs();
    if (now - this.withheldLoggedAt >= 10_000) {
      this.log.error(
        { topic: delivery.message.topic, error: why.refusal.error, messages: this.withheldSinceLog },
        'the dead-letter topic refused a record even shrunk; the message stays unacknowledged (the broker keeps it)',
      );
      this.withheldLoggedAt = now;
      this.withheldSinceLog = 0;
    }
  }

  /** Per route with messages in flight: how old its oldest unacknowledged message is (ms). */
  oldestUnacked(now = monotonicMs()): Map<string, number> {
    const out = new Map<string, number>();
    for (const [route, set] of this.unacked) {
      const first = set.values().next();
      if (!first.done) out.set(route, now - first.value.slot.openedAt);
    }
    return out;
  }

  private unackedOf(route: string): Set<Delivery> {
    let set = this.unacked.get(route);
    if (!set) this.unacked.set(route, (set = new Set()));
    return set;
  }

  /** Encodes and sends the outputs of one phase. */
  private send(delivery: Delivery, phase: 0 | 1, annotations: Annotations | undefined): void {
    const { message, clientId } = delivery;
    for (const match of delivery.matches) {
      let input: MatchInput | undefined;
      for (const output of match.outputs) {
        if (!encodes(match, output, phase)) continue;
        input ??= { message, route: match.route, levels: match.levels, payload: match.payload, clientId, annotations };
        this.sendOne(delivery, match, output, input);
      }
    }
  }

  private sendOne(delivery: Delivery, match: Match, output: RouteOutput, input: MatchInput): void {
    const encoded = output.encode(input);
    if ('skip' in encoded) return;
    if ('refusal' in encoded) {
      delivery.refuse(encoded.refusal);
      return;
    }
    const queue = this.options.queues.get(output.sink);
    if (!queue) {
      delivery.refuse({ reason: 'mapping', stage: 'map', route: match.route, sink: output.sink, error: `sink ${output.sink} is not configured` });
      return;
    }
    if (encoded.eventTimeMs !== undefined) delivery.eventTimeMs ??= encoded.eventTimeMs;
    this.routedCounter(match.route, output).inc();
    delivery.send(queue, encoded.item);
  }

  private routedCounter(route: string, output: RouteOutput): { inc(): void } {
    let c = this.routedCounters.get(output);
    if (!c) this.routedCounters.set(output, (c = this.metrics.routed.labels(route, output.sink)));
    return c;
  }
}
