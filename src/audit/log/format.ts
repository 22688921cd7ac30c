// The audit log's on-disk format, version 1 (docs/audit-log.md is the specification a third
// party needs to write a verifier). A segment file starts with a 16-byte magic; then frames:
// u32 BE body length | u32 BE CRC-32C of the body | body. A body is UTF-8 JSON; every body
// carries `seq` (1, 2, 3, ... across segments) and `prev`, the SHA-256 (hex) of the previous
// body (64 zeros for the first), so editing, removing, inserting or reordering any record
// breaks the chain. Checkpoint records sign the chain head with Ed25519, and (since trees came)
// the Merkle tree head over every record before them (merkle.ts).
import { createHash, type KeyObject, sign, verify } from 'node:crypto';
import { readdirSync } from 'node:fs';
import type { Message } from '../../message.ts';
import { crc32c } from './crc32c.ts';

export const segmentMagic = Buffer.from('SLUICE-AUDIT-1\n\0', 'latin1');
export const frameHeaderBytes = 8;
/** A body longer than this is a corrupt length field, not a record. */
export const maxBodyBytes = 64 * 1024 * 1024;
export const genesis = '0'.repeat(64);

/** One command as received, faithfully: bytes as base64, so any payload or property survives. */
export interface CommandRecord {
  readonly v: 1;
  readonly type: 'command';
  readonly seq: number;
  readonly prev: string;
  readonly receivedAt: string;
  readonly topic: string;
  readonly levels: Record<string, string>;
  readonly qos: number;
  readonly retain: boolean;
  /** The MQTT packet id it arrived with, and the client id of the connection that took it. */
  readonly packetId?: number;
  readonly worker?: string;
  /** The publisher's identity, when the broker provides one (a user property named in config). */
  readonly publisher?: string;
  /** The application's idempotency key (the route's `audit.idempotencyKey`): recorded once per key within the window. */
  readonly idempotencyKey?: string;
  readonly properties: {
    readonly userProperties?: Record<string, string | string[]>;
    readonly contentType?: string;
    readonly responseTopic?: string;
    /** base64 */
    readonly correlationData?: string;
    readonly payloadFormatIndicator?: boolean;
    readonly messageExpiryInterval?: number;
  };
  /** base64 */
  readonly payload: string;
}

export interface CheckpointRecord {
  readonly v: 1;
  readonly type: 'checkpoint';
  readonly seq: number;
  readonly prev: string;
  readonly at: string;
  /** Ed25519 over checkpointMessage(seq, prev, tree), base64. */
  readonly signature: string;
  /** SHA-256 (hex, first 16) of the public key's DER, to tell keys apart. */
  readonly keyId: string;
  /** The Merkle tree over every record before this one: its size (seq - 1) and head (hex). Absent in checkpoints written before trees. */
  readonly treeSize?: number;
  readonly treeHead?: string;
  /** The tree's subtree roots (hex, largest first): where a restarted writer goes on from. Not signed: verify recomputes the tree. */
  readonly frontier?: readonly string[];
}

/** The tree a checkpoint signs. */
export interface TreeHead {
  readonly size: number;
  readonly head: string;
}

export type AuditRecord = CommandRecord | CheckpointRecord;

/** A command record before the log gives it its place in the chain. */
export type NewCommand = Omit<CommandRecord, 'v' | 'type' | 'seq' | 'prev'>;

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export function encodeFrame(body: Buffer): Buffer {
  const frame = Buffer.allocUnsafe(frameHeaderBytes + body.length);
  frame.writeUInt32BE(body.length, 0);
  frame.writeUInt32BE(crc32c(body), 4);
  body.copy(frame, frameHeaderBytes);
  return frame;
}

/** Where readFrames stopped: the end of the bytes, a frame cut short, or a frame failing its CRC (which ends at `end`). */
export type FramesEnd = { readonly stop: 'end' | 'cut'; readonly offset: number } | { readonly stop: 'crc'; readonly offset: number; readonly end: number };

/**
 * The frames of `bytes` from `offset` on whose CRC-32C holds, in order; it stops at the first
 * that is cut short or fails its CRC and returns where and why. The writer's recovery and the
 * exactly-once ledger read with it; `verify` has its own stricter reading, to tell every kind of
 * damage apart.
 */
export function* readFrames(bytes: Buffer, offset: number): Generator<{ readonly offset: number; readonly body: Buffer }, FramesEnd, void> {
  while (offset < bytes.length) {
    if (offset + frameHeaderBytes > bytes.length) return { stop: 'cut', offset };
    const end = offset + frameHeaderBytes + bytes.readUInt32BE(offset);
    if (end > bytes.length) return { stop: 'cut', offset };
    const body = bytes.subarray(offset + frameHeaderBytes, end);
    if (crc32c(body) !== bytes.readUInt32BE(offset + 4)) return { stop: 'crc', offset, end };
    yield { offset, body };
    offset = end;
  }
  return { stop: 'end', offset };
}

/** What a checkpoint signs: the chain head, and the tree head when it carries one. */
export function checkpointMessage(seq: number, prev: string, tree?: TreeHead): Buffer {
  if (tree === undefined) return Buffer.from(`sluice-audit-checkpoint\n${seq}\n${prev}\n`);
  return Buffer.from(`sluice-audit-checkpoint-2\n${seq}\n${prev}\n${tree.size}\n${tree.head}\n`);
}

/** The tree head a checkpoint carries, if it carries one. */
export function treeOf(record: CheckpointRecord): TreeHead | undefined {
  return record.treeHead === undefined || record.treeSize === undefined ? undefined : { size: record.treeSize, head: record.treeHead };
}

export function keyId(publicKey: KeyObject): string {
  return sha256Hex(publicKey.export({ type: 'spki', format: 'der' })).slice(0, 16);
}

export function signCheckpoint(
  seq: number,
  prev: string,
  tree: (TreeHead & { readonly frontier: readonly string[] }) | undefined,
  privateKey: KeyObject,
  publicKey: KeyObject,
): CheckpointRecord {
  return {
    v: 1,
    type: 'checkpoint',
    seq,
    prev,
    at: new Date().toISOString(),
    signature: sign(null, checkpointMessage(seq, prev, tree), privateKey).toString('base64'),
    keyId: keyId(publicKey),
    ...(tree ? { treeSize: tree.size, treeHead: tree.head, frontier: tree.frontier } : {}),
  };
}

export function checkpointValid(record: CheckpointRecord, publicKey: KeyObject): boolean {
  return verify(null, checkpointMessage(record.seq, record.prev, treeOf(record)), publicKey, Buffer.from(record.signature, 'base64'));
}

/** Segment file name: the first sequence number it holds, zero-padded so names sort. */
export function segmentName(firstSeq: number): string {
  return `${String(firstSeq).padStart(20, '0')}.audit`;
}

export const segmentPattern = /^\d{20}\.audit$/;

/** The segment files of a log directory, in order. */
export function segmentFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => segmentPattern.test(f))
    .sort();
}

// The record codec: a message as received <-> its command record, nothing lost either way.

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
export function toRecord(
  message: Message,
  levels: Record<string, string>,
  clientId: string,
  publisherProperty: string | undefined,
  idempotencyKey?: string,
): NewCommand {
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
    worker: clientId, // the record's name for the client id of the connection that took it
    ...(publisher === undefined ? {} : { publisher: Array.isArray(publisher) ? publisher.join(',') : publisher }),
    ...(idempotencyKey === undefined ? {} : { idempotencyKey }),
    properties,
    payload: message.payload.toString('base64'),
  };
}
