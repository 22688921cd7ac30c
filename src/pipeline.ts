// source -> router -> sinks, and back to the ack window: each message is routed, its deliveries
// queued on the sinks, and its ack slot settled once every delivery is durable (fan-out: the
// slowest decides). What the rules or a sink refuse goes to the dead-letter topic first, so a
// message is acked only when it is durable somewhere: nothing silent, nothing lost. A message
// of an audit route is recorded first; its other outputs follow with the record's sequence
// number in a `sluice-audit-seq` header (an idempotency key downstream), so a redelivered
// command goes to Kafka again but never into the audit log twice.
import type { Logger } from 'pino';
import type { Message } from './message.ts';
import type { Metrics } from './observability/metrics.ts';
import { mqttHeaders } from './router/kafka-headers.ts';
import type { DeadLetterNote, KafkaRecord, Routed } from './router/outputs.ts';
import type { RuleSet } from './router/rule-set.ts';
import type { AckSlot } from './source/ack-window.ts';
import { AuditRefusedError, type AuditSink } from './sinks/audit/audit-sink.ts';
import type { BatchQueue, ItemOwner } from './sinks/batch-queue.ts';
import type { Rejection } from './sinks/sink.ts';

export interface PipelineSinks {
  readonly kafka: BatchQueue<KafkaRecord>;
  readonly influx?: BatchQueue<string> | undefined;
  readonly audit?: AuditSink | undefined;
}

/** One message's deliveries: settles the ack slot when the last one is durable. */
class Delivery implements ItemOwner {
  remaining: number;
  readonly message: Message;
  readonly slot: AckSlot;
  readonly pipeline: Pipeline;
  readonly eventTimeMs: number | undefined;
  readonly routes: string;

  constructor(pipeline: Pipeline, message: Message, slot: AckSlot, remaining: number, routes: string, eventTimeMs: number | undefined) {
    this.pipeline = pipeline;
    this.message = message;
    this.slot = slot;
    this.remaining = remaining;
    this.routes = routes;
    this.eventTimeMs = eventTimeMs;
  }

  delivered(): void {
    if (--this.remaining === 0) this.pipeline.settle(this);
  }

  /** A sink refused the item for what it is: it goes to the dead-letter topic instead. */
  rejected(r: Omit<Rejection, 'index'>): void {
    this.pipeline.deadLetter(this, [{ reason: r.reason, stage: 'write', route: this.routes, error: r.error }]);
  }
}

/** The dead-letter record's owner: counts it by reason once durable. */
class DeadLetterDelivery implements ItemOwner {
  readonly delivery: Delivery;
  readonly notes: readonly DeadLetterNote[];
  readonly withoutPayload: boolean;
  constructor(delivery: Delivery, notes: readonly DeadLetterNote[], withoutPayload: boolean) {
    this.delivery = delivery;
    this.notes = notes;
    this.withoutPayload = withoutPayload;
  }
  delivered(): void {
    this.delivery.pipeline.deadLettered(this.notes[0]?.reason ?? 'mapping');
    this.delivery.delivered();
  }
  rejected(r: Omit<Rejection, 'index'>): void {
    this.delivery.pipeline.deadLetterRefused(this, r);
  }
}

export class Pipeline {
  private readonly rules: () => RuleSet;
  private readonly sinks: PipelineSinks;
  private readonly deadLetterTopic: string;
  private readonly metrics: Metrics;
  private readonly log: Logger;
  /** prom-client children per route and sink, looked up once (labels are hashed on every inc() otherwise). */
  private readonly routedCounters = new Map<string, { inc(): void }>();

  constructor(rules: () => RuleSet, sinks: PipelineSinks, deadLetterTopic: string, metrics: Metrics, log: Logger) {
    this.rules = rules;
    this.sinks = sinks;
    this.deadLetterTopic = deadLetterTopic;
    this.metrics = metrics;
    this.log = log;
  }

  /** `worker`: the client id of the connection that took the message (audit records name it). */
  dispatch(message: Message, slot: AckSlot, worker = ''): void {
    let routed: Routed;
    try {
      routed = this.rules().route(message);
    } catch (err) {
      // a bug, not bad input: still never a crash or a silent drop
      this.log.error({ err, topic: message.topic }, 'routing threw; dead-lettering the message');
      routed = { outcome: 'routed', routes: [], kafka: [], influx: [], deadLetters: [{ reason: 'mapping', stage: 'route', error: `internal error: ${(err as Error).message}` }] };
    }
    if (routed.outcome !== 'routed') {
      (routed.outcome === 'expired' ? this.metrics.expired : this.metrics.unmatchedDropped).inc();
      this.metrics.acked.inc();
      slot.settle();
      return;
    }
    const { influx, deadLetters, audit } = routed;
    const influxQueue = this.sinks.influx;
    const auditSink = audit ? this.sinks.audit : undefined;
    const remaining = routed.kafka.length + (influxQueue ? influx.length : 0) + (deadLetters.length > 0 ? 1 : 0) + (auditSink ? 1 : 0);
    const delivery = new Delivery(this, message, slot, remaining, routed.routes.join(','), routed.eventTimeMs);
    if (remaining === 0) {
      this.settle(delivery);
      return;
    }
    if (auditSink && audit) {
      auditSink.record(message, audit.levels, worker).then((seq) => {
        this.forward(delivery, routed, String(seq));
        delivery.delivered();
      }, (err: unknown) => {
        if (err instanceof AuditRefusedError) {
          // the audit delivery becomes a dead letter; the other outputs still go
          this.pushDeadLetter(delivery, [{ reason: 'audit-refused', stage: 'write', route: audit.route, sink: 'audit', error: err.message }], false);
          this.forward(delivery, routed, undefined);
        }
        // otherwise the log is fatal and the process stops: the message stays unacked
      });
      return;
    }
    this.forward(delivery, routed, undefined);
  }

  private forward(delivery: Delivery, routed: Routed, auditSeq: string | undefined): void {
    const { kafka, influx, deadLetters } = routed;
    const influxQueue = this.sinks.influx;
    for (const k of kafka) {
      this.routedCounter(k.route, 'kafka').inc();
      this.sinks.kafka.push(auditSeq === undefined ? k.record : { ...k.record, headers: { ...k.record.headers, 'sluice-audit-seq': auditSeq } }, delivery);
    }
    if (influxQueue) {
      for (const i of influx) {
        this.routedCounter(i.route, 'influx').inc();
        influxQueue.push(i.line, delivery);
      }
    }
    if (deadLetters.length > 0) this.pushDeadLetter(delivery, deadLetters, false);
  }

  private routedCounter(route: string, sink: 'kafka' | 'influx'): { inc(): void } {
    const key = `${route}\0${sink}`;
    let c = this.routedCounters.get(key);
    if (!c) this.routedCounters.set(key, (c = this.metrics.routed.labels(route, sink)));
    return c;
  }

  settle(delivery: Delivery): void {
    const now = Date.now();
    delivery.slot.settle();
    this.metrics.acked.inc();
    this.metrics.ackLatency.observe((now - delivery.message.receivedAt) / 1000);
    if (delivery.eventTimeMs !== undefined) this.metrics.endToEnd.observe(Math.max(0, now - delivery.eventTimeMs) / 1000);
  }

  deadLetter(delivery: Delivery, notes: readonly DeadLetterNote[]): void {
    // replaces the refused delivery one for one: `remaining` is unchanged
    this.pushDeadLetter(delivery, notes, false);
  }

  deadLettered(reason: string): void {
    this.metrics.deadLettered.inc({ reason });
  }

  /** The dead-letter topic refused the record (too large?): once more without the payload, then give up loudly. */
  deadLetterRefused(owner: DeadLetterDelivery, r: Omit<Rejection, 'index'>): void {
    if (!owner.withoutPayload) {
      this.pushDeadLetter(owner.delivery, owner.notes, true);
      return;
    }
    this.log.error({ topic: owner.delivery.message.topic, reason: owner.notes[0]?.reason, error: r.error },
      'the dead-letter topic refused a record even without its payload; the message is acknowledged and counted as lost');
    this.metrics.deadLettered.inc({ reason: 'dead-letter-refused' });
    owner.delivery.delivered();
  }

  private pushDeadLetter(delivery: Delivery, notes: readonly DeadLetterNote[], withoutPayload: boolean): void {
    this.sinks.kafka.push(deadLetterRecord(this.deadLetterTopic, delivery.message, notes, withoutPayload),
      new DeadLetterDelivery(delivery, notes, withoutPayload));
  }
}

/** The dead-letter record: the original payload, the reason in headers. */
export function deadLetterRecord(topic: string, message: Message, notes: readonly DeadLetterNote[], withoutPayload: boolean): KafkaRecord {
  const first = notes[0] as DeadLetterNote;
  const headers = mqttHeaders(message);
  headers['sluice-reason'] = first.reason;
  headers['sluice-stage'] = first.stage;
  headers['sluice-error'] = notes.map((n) => n.error).join('; ').slice(0, 2000);
  headers['sluice-received-at'] = new Date(message.receivedAt).toISOString();
  if (first.route) headers['sluice-route'] = first.route;
  if (first.sink) headers['sluice-sink'] = first.sink;
  if (withoutPayload) headers['sluice-payload-dropped'] = `${message.payload.length} bytes refused by the dead-letter topic`;
  return {
    topic,
    key: message.topic,
    value: withoutPayload ? Buffer.alloc(0) : message.payload,
    headers,
    timestamp: String(message.receivedAt),
  };
}
