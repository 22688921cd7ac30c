// The records a KafkaRecord becomes on the wire: its value in the Confluent wire format when it
// has a registry schema (magic byte, schema id, Protobuf's message indexes, then the body), and
// a fanned-out message's other elements right behind its first (same key: same partition, in
// order).
import type { KafkaRecord } from '../kafka-record.ts';

/** How many records `pushWireRecords` makes of one. */
export function wireRecordCount(r: KafkaRecord): number {
  return 1 + (r.more?.length ?? 0);
}

export function pushWireRecords(r: KafkaRecord, out: KafkaRecord[]): void {
  const header = r.schema?.header;
  out.push(header ? { ...r, value: Buffer.concat([header, r.value]), more: undefined } : r.more ? { ...r, more: undefined } : r);
  if (r.more) for (const e of r.more) out.push({ ...r, ...e, value: header ? Buffer.concat([header, e.value]) : e.value, more: undefined });
}
