// The audit sink: each message of an audit route becomes a command record, and a batch
// resolves once its records are on disk (fsync'd; the AuditLog group-commits whatever arrives
// while a sync runs), so the PUBREC that follows is a promise kept. Each record's sequence
// number is handed on to the route's other outputs (sluice-audit-seq). A QoS 2 redelivery of a
// message already recorded (same packet id and content, not yet released, or released and sent
// again with DUP by a broker restarted from an older save) resolves with the first record's
// number and writes nothing: exactly once. A route's idempotency key does the same for a
// command its publisher sent again under a new packet id. A payload too large for a record is
// rejected (dead-lettered); a failed write or fsync is fatal, never retried.

import type { SegmentArchiver } from '../../audit/archive/archiver.ts';
import { contentDigest, type ExactlyOnceLedger } from '../../audit/exactly-once/exactly-once-ledger.ts';
import type { IdempotencyIndex } from '../../audit/exactly-once/idempotency-index.ts';
import type { AnchorPublisher } from '../../audit/log/anchors.ts';
import type { AuditLog } from '../../audit/log/audit-log.ts';
import { maxBodyBytes, toRecord } from '../../audit/log/format.ts';
import type { Message } from '../../message.ts';
import { type ItemRejection, type Sink, SinkError, type WriteResult } from '../sink.ts';
import type { AuditMetrics } from './audit-metrics.ts';

/** What an audit route hands the sink: the message as received, its levels, the connection that took it. */
export interface AuditItem {
  readonly message: Message;
  readonly levels: Readonly<Record<string, string>>;
  readonly clientId: string;
  /** The route's idempotency key of this message: a string, null when the route names one and the message has none. */
  readonly key?: string | null;
}

export interface AuditSinkOptions {
  /** The client id of the command connection: its QoS 2 messages are deduplicated by the ledger. */
  readonly commandsClientId: string | undefined;
  /** A user property that carries the publisher's identity, when the broker adds one. */
  readonly publisherProperty?: string | undefined;
  /** Where the signed checkpoints are published (audit.anchors): its problems show in readiness. */
  readonly anchors?: AnchorPublisher | undefined;
  /** Where sealed segments are uploaded (audit.archive): its problems show in readiness too. */
  readonly archive?: SegmentArchiver | undefined;
  readonly onClose?: () => void;
}

/** Room left in a record for everything but the payload (topic, properties, JSON). */
const recordOverheadBytes = 256 * 1024;
export const maxAuditPayloadBytes = Math.floor((maxBodyBytes - recordOverheadBytes) / 4) * 3;

export const auditSeqHeader = 'sluice-audit-seq';

export class AuditSink implements Sink<AuditItem> {
  readonly name = 'audit';
  private readonly log: AuditLog;
  private readonly ledger: ExactlyOnceLedger | undefined;
  private readonly keys: IdempotencyIndex;
  private readonly options: AuditSinkOptions;
  private readonly metrics: AuditMetrics;
  private fatal: Error | undefined;

  constructor(log: AuditLog, ledger: ExactlyOnceLedger | undefined, keys: IdempotencyIndex, options: AuditSinkOptions, metrics: AuditMetrics) {
    this.log = log;
    this.ledger = ledger;
    this.keys = keys;
    this.options = options;
    this.metrics = metrics;
  }

  sizeOf(item: AuditItem): number {
    return item.message.payload.length + 512;
  }

  async write(batch: readonly AuditItem[]): Promise<WriteResult> {
    const rejected: ItemRejection[] = [];
    const seqs = batch.map((item, index) => {
      if (item.message.payload.length > maxAuditPayloadBytes) {
        this.metrics.refused.inc();
        rejected.push({
          index,
          reason: 'audit-refused',
          error: `a ${item.message.payload.length}-byte payload is over the audit record limit of ${maxAuditPayloadBytes} bytes`,
        });
        return undefined;
      }
      return this.record(item);
    });
    let recorded: Array<number | undefined>;
    try {
      recorded = await Promise.all(seqs);
    } catch (err) {
      this.fatal ??= err as Error;
      throw new SinkError(this.name, (err as Error).message, { cause: err, retriable: false });
    }
    return { rejected, annotations: recorded.map((seq) => (seq === undefined ? undefined : { [auditSeqHeader]: String(seq) })) };
  }

  problems(): readonly string[] {
    if (this.fatal) return [`audit: failed (stopping): ${this.fatal.message}`];
    return [...(this.options.anchors?.problems() ?? []), ...(this.options.archive?.problems() ?? [])];
  }

  /** PUBREL of the command connection: durable before PUBCOMP. */
  async release(packetId: number): Promise<void> {
    if (!this.ledger) return;
    await this.ledger.release(packetId);
    this.metrics.awaitingRelease.set(this.ledger.size);
    this.metrics.releasedHistory.set(this.ledger.releasedSize);
  }

  async close(): Promise<void> {
    this.options.onClose?.();
    if (this.fatal) return; // nothing more may be written
    await this.ledger?.close();
    await this.log.close();
    await this.options.anchors?.close(); // the last checkpoint's anchor, given a moment
    await this.options.archive?.close(); // a segment sealed just before, given a moment
  }

  /** Resolves with the record's sequence number once it is durable. */
  private record({ message, levels, clientId, key }: AuditItem): Promise<number> {
    if (key === null) this.metrics.keyMissing.inc();
    if (key) {
      const earlier = this.keys.recorded(key);
      if (earlier) {
        this.metrics.idempotentDuplicates.inc();
        return earlier;
      }
    }
    const recorded = this.recordOnce(message, levels, clientId, key ?? undefined);
    if (key) {
      this.keys.recording(key, recorded);
      this.metrics.idempotencyKeys.set(this.keys.size);
    }
    return recorded;
  }

  /** Exactly once by packet id on the command connection (the ledger); a plain append otherwise. */
  private recordOnce(message: Message, levels: Readonly<Record<string, string>>, clientId: string, key: string | undefined): Promise<number> {
    const append = () => this.log.append(toRecord(message, levels, clientId, this.options.publisherProperty, key));
    const ledger = this.ledger;
    const exactlyOnce = ledger !== undefined && message.qos === 2 && message.packetId !== undefined && clientId === this.options.commandsClientId;
    if (!exactlyOnce) return append();
    const packetId = message.packetId as number;
    const digest = contentDigest(message.topic, message.payload);
    const earlier = ledger.recorded(packetId, digest);
    if (earlier) {
      this.metrics.redeliveries.inc();
      return earlier;
    }
    if (message.dup) {
      const released = ledger.releasedRecord(packetId, digest);
      if (released !== undefined) {
        this.metrics.rollbackRedeliveries.inc();
        return Promise.resolve(released);
      }
    }
    if (ledger.heldForOther(packetId, digest)) this.metrics.idConflicts.inc();
    const recorded = ledger.recording(packetId, digest, append());
    this.metrics.awaitingRelease.set(ledger.size);
    return recorded;
  }
}
