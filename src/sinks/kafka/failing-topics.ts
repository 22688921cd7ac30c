// Topics failing on their own (deleted, not authorised, no leader), and the records that wait
// for them: while a topic has records deferred, newer records for it are deferred behind them
// (order per partition), until they are written or the queue gives up on them.
import type { Logger } from 'pino';
import type { KafkaRecord } from './kafka-record.ts';
import { TopicFaults } from './topic-faults.ts';

export class FailingTopics {
  /** Topics failing on their own now, with Kafka's words (for /readyz and the dead letter). */
  private readonly failing: TopicFaults;
  /** Records deferred and not yet written or given up, by topic. */
  private readonly waiting = new Map<string, Set<KafkaRecord>>();
  private readonly log: Logger;

  constructor(log: Logger, faults = new TopicFaults()) {
    this.log = log;
    this.failing = faults;
  }

  get any(): boolean {
    return this.failing.any;
  }

  has(topic: string): boolean {
    return this.failing.reason(topic) !== undefined;
  }

  /**
   * A topic's own fault: its records wait, the other topics flow. Seen again at each retry of
   * its waiting records; once none is left (all written or dead-lettered) and no new one comes,
   * it is forgotten a minute later.
   */
  failed(topic: string, error: string): void {
    if (this.failing.seen(topic, error)) this.log.warn({ topic, err: error }, 'kafka topic failing on its own: its records wait, the other topics flow');
  }

  recovered(topic: string): void {
    const failedForMs = this.failing.clear(topic);
    if (failedForMs !== undefined) this.log.info({ topic, failedForMs }, 'kafka topic writable again');
  }

  /** Whether the record must wait behind older records of its topic that wait already. */
  behind(record: KafkaRecord): boolean {
    const w = this.waiting.get(record.topic);
    return w !== undefined && !w.has(record);
  }

  get anyWaiting(): boolean {
    return this.waiting.size > 0;
  }

  /** After a write: what is deferred now holds its topic; what was written or rejected no longer does. */
  track(batch: readonly KafkaRecord[], deferred: readonly number[]): void {
    const held = new Set(deferred);
    for (let i = 0; i < batch.length; i++) {
      const r = batch[i] as KafkaRecord;
      if (held.has(i)) {
        let w = this.waiting.get(r.topic);
        if (!w) this.waiting.set(r.topic, (w = new Set()));
        w.add(r);
      } else this.forget(r);
    }
  }

  /**
   * The queue gave up on a deferred record (dead-lettered): it no longer holds its topic. Returns
   * why it was not written; `checkFailure`, why the topic's lookup keeps failing, if it does.
   */
  giveUp(record: KafkaRecord, checkFailure?: string): string {
    this.forget(record);
    const error = this.failing.reason(record.topic);
    if (error !== undefined) return `topic ${record.topic}: ${error}`;
    return checkFailure === undefined
      ? `topic ${record.topic}: not ready (being checked or created)`
      : `topic ${record.topic}: not ready: its lookup fails: ${checkFailure}`;
  }

  /** For /readyz: the first few, with how long and Kafka's words. */
  problems(sink: string): string[] {
    return this.failing.lines((topic, seconds, error) => `${sink}: topic ${topic} failing for ${seconds} s: ${error}`);
  }

  private forget(r: KafkaRecord): void {
    const w = this.waiting.get(r.topic);
    if (w?.delete(r) && w.size === 0) this.waiting.delete(r.topic);
  }
}
