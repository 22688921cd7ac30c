// The audit sink: turns a message into a command record and resolves once it is on disk
// (fsync'd, group-committed by the AuditLog), so the PUBREC that follows is a promise kept. A
// QoS 2 redelivery of a message already recorded (same packet id and content, not yet released)
// resolves with the first record's sequence number and writes nothing: exactly once. A message
// too large for a record is refused (the pipeline dead-letters it); a write or fsync failure
// is fatal and belongs to the AuditLog.
import type { AuditLog, NewCommand } from '../../audit/audit-log.ts';
import { contentDigest, type ExactlyOnceLedger } from '../../audit/exactly-once-ledger.ts';
import { maxBodyBytes, type CommandRecord } from '../../audit/format.ts';
import type { Message } from '../../message.ts';
import type { Metrics } from '../../observability/metrics.ts';

export class AuditRefusedError extends Error {
  override readonly name = 'AuditRefusedError';
}

export interface AuditSinkOptions {
  /** The client id of the command connection: its QoS 2 messages are deduplicated by the ledger. */
  readonly commandsWorker: string | undefined;
  /** A user property that carries the publisher's identity, when the broker adds one. */
  readonly publisherProperty?: string | undefined;
}

/** Room left in a record for everything but the payload (topic, properties, JSON). */
const recordOverheadBytes = 256 * 1024;
export const maxAuditPayloadBytes = Math.floor((maxBodyBytes - recordOverheadBytes) / 4) * 3;

export class AuditSink {
  private readonly log: AuditLog;
  private readonly ledger: ExactlyOnceLedger | undefined;
  private readonly options: AuditSinkOptions;
  private readonly metrics: Metrics;

  constructor(log: AuditLog, ledger: ExactlyOnceLedger | undefined, options: AuditSinkOptions, metrics: Metrics) {
    this.log = log;
    this.ledger = ledger;
    this.options = options;
    this.metrics = metrics;
  }

  /** Resolves with the record's sequence number once it is durable. */
  record(message: Message, levels: Record<string, string>, worker: string): Promise<number> {
    if (message.payload.length > maxAuditPayloadBytes) {
      this.metrics.auditRefused.inc();
      return Promise.reject(new AuditRefusedError(`a ${message.payload.length}-byte payload is over the audit record limit of ${maxAuditPayloadBytes} bytes`));
    }
    const ledger = this.ledger;
    const exactlyOnce = ledger !== undefined && message.qos === 2 && message.packetId !== undefined && worker === this.options.commandsWorker;
    if (!exactlyOnce) return this.log.append(toRecord(message, levels, worker, this.options.publisherProperty));
    const packetId = message.packetId as number;
    const digest = contentDigest(message.topic, message.payload);
    const earlier = ledger.recorded(packetId, digest);
    if (earlier) {
      this.metrics.auditRedeliveries.inc();
      return earlier;
    }
    if (ledger.heldForOther(packetId, digest)) this.metrics.auditIdConflicts.inc();
    const recorded = ledger.recording(packetId, digest, this.log.append(toRecord(message, levels, worker, this.options.publisherProperty)));
    this.metrics.auditAwaitingRelease.set(ledger.size);
    return recorded;
  }

  /** PUBREL of the command connection: durable before PUBCOMP. */
  async release(packetId: number): Promise<void> {
    if (!this.ledger) return;
    await this.ledger.release(packetId);
    this.metrics.auditAwaitingRelease.set(this.ledger.size);
  }
}

/** The message a record was made from (its inverse, for replay): the bytes and properties as received. */
export function fromRecord(record: CommandRecord): Message {
  const p = record.properties;
  return {
    topic: record.topic,
    payload: Buffer.from(record.payload, 'base64'),
    qos: record.qos as 0 | 1 | 2,
    retain: record.retain,
    receivedAt: Date.parse(record.receivedAt),
    ...(record.packetId === undefined ? {} : { packetId: record.packetId }),
    properties: {
      ...(p.userProperties === undefined ? {} : { userProperties: p.userProperties }),
      ...(p.contentType === undefined ? {} : { contentType: p.contentType }),
      ...(p.responseTopic === undefined ? {} : { responseTopic: p.responseTopic }),
      ...(p.correlationData === undefined ? {} : { correlationData: Buffer.from(p.correlationData, 'base64') }),
      ...(p.payloadFormatIndicator === undefined ? {} : { payloadFormatIndicator: p.payloadFormatIndicator }),
      ...(p.messageExpiryInterval === undefined ? {} : { messageExpiryInterval: p.messageExpiryInterval }),
    },
  };
}

/** The record as the format specifies it (docs/audit-log.md): bytes as base64, nothing lost. */
export function toRecord(message: Message, levels: Record<string, string>, worker: string, publisherProperty: string | undefined): NewCommand {
  const p = message.properties;
  const properties: { -readonly [K in keyof NewCommand['properties']]: NewCommand['properties'][K] } = {};
  if (p.userProperties && Object.keys(p.userProperties).length > 0) properties.userProperties = p.userProperties;
  if (p.contentType !== undefined) properties.contentType = p.contentType;
  if (p.responseTopic !== undefined) properties.responseTopic = p.responseTopic;
  if (p.correlationData !== undefined) properties.correlationData = Buffer.from(p.correlationData).toString('base64');
  if (p.payloadFormatIndicator !== undefined) properties.payloadFormatIndicator = p.payloadFormatIndicator;
  if (p.messageExpiryInterval !== undefined) properties.messageExpiryInterval = p.messageExpiryInterval;
  const publisher = publisherProperty === undefined ? undefined : p.userProperties?.[publisherProperty];
  return {
    receivedAt: new Date(message.receivedAt).toISOString(),
    topic: message.topic,
    levels,
    qos: message.qos,
    retain: message.retain,
    ...(message.packetId === undefined ? {} : { packetId: message.packetId }),
    worker,
    ...(publisher === undefined ? {} : { publisher: Array.isArray(publisher) ? publisher.join(',') : publisher }),
    properties,
    payload: message.payload.toString('base64'),
  };
}
