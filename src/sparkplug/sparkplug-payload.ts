// Sparkplug B v3 payloads: the protobuf decoded by Eclipse Tahu's generated code (the official
// sparkplug_b.proto, shipped in sparkplug-payload), each metric's value then read per its
// datatype as the spec stores it. 64-bit integers stay bigint, so nothing beyond 2^53 is
// rounded; Tahu's own decodePayload is not used because it returns Long objects for them and
// throws on DataSet columns of some types.
import { createRequire } from 'node:module';
import type protobufjs from 'protobufjs';

// protobufjs and Tahu's generated code are loaded by the first Sparkplug payload decoded: a
// worker without Sparkplug routes never loads them.
const require = createRequire(import.meta.url);
let protobuf: typeof protobufjs | undefined;
let Payload: { decode(b: Uint8Array): TahuPayload } | undefined;

/** The Sparkplug B datatypes, by their number in the spec. */
export const sparkplugTypes = [
  'Unknown',
  'Int8',
  'Int16',
  'Int32',
  'Int64',
  'UInt8',
  'UInt16',
  'UInt32',
  'UInt64',
  'Float',
  'Double',
  'Boolean',
  'String',
  'DateTime',
  'Text',
  'UUID',
  'DataSet',
  'Bytes',
  'File',
  'Template',
  'PropertySet',
  'PropertySetList',
  'Int8Array',
  'Int16Array',
  'Int32Array',
  'Int64Array',
  'UInt8Array',
  'UInt16Array',
  'UInt32Array',
  'UInt64Array',
  'FloatArray',
  'DoubleArray',
  'BooleanArray',
  'StringArray',
  'DateTimeArray',
] as const;
export type SparkplugType = (typeof sparkplugTypes)[number];

export interface SparkplugDataSet {
  readonly columns: readonly string[];
  readonly types: readonly SparkplugType[];
  readonly rows: ReadonlyArray<readonly SparkplugValue[]>;
}

export interface SparkplugTemplate {
  readonly templateRef: string | undefined;
  readonly isDefinition: boolean;
  readonly metrics: readonly SparkplugMetric[];
}

export type SparkplugValue = number | bigint | boolean | string | Buffer | SparkplugDataSet | SparkplugTemplate | null;

export interface SparkplugMetric {
  /** Absent on alias-only data until resolved from the birth. */
  name: string | undefined;
  readonly alias: bigint | undefined;
  /** Unknown (0) until resolved from the birth, when data leave it out. */
  type: SparkplugType;
  /** Read per the type the metric carried; re-read per the birth's type when it carried none. */
  value: SparkplugValue;
  /** Epoch ms. */
  readonly timestamp: number | undefined;
  readonly isNull: boolean;
  readonly isHistorical: boolean;
  /** The spec's is_transient: a value not to be historized (InfluxDB leaves it out; Kafka has it, marked). */
  readonly isTransient: boolean;
  /** The decoded protobuf metric, kept to re-read the value with the birth's datatype. */
  readonly raw: TahuMetric;
}

export interface SparkplugPayload {
  /** Epoch ms. */
  readonly timestamp: number | undefined;
  readonly seq: number | undefined;
  readonly metrics: SparkplugMetric[];
}

interface Long {
  readonly low: number;
  readonly high: number;
  readonly unsigned: boolean;
}
export interface TahuMetric {
  readonly name: string;
  readonly alias: Long | number;
  readonly timestamp: Long | number;
  readonly datatype: number;
  readonly isNull: boolean;
  readonly isHistorical: boolean;
  readonly isTransient: boolean;
  readonly intValue: number | null;
  readonly longValue: Long | number | null;
  readonly floatValue: number | null;
  readonly doubleValue: number | null;
  readonly booleanValue: boolean | null;
  readonly stringValue: string | null;
  readonly bytesValue: Uint8Array | null;
  readonly datasetValue: TahuDataSet | null;
  readonly templateValue: TahuTemplate | null;
}
interface TahuDataSetValue {
  readonly intValue: number | null;
  readonly longValue: Long | number | null;
  readonly floatValue: number | null;
  readonly doubleValue: number | null;
  readonly booleanValue: boolean | null;
  readonly stringValue: string | null;
}
interface TahuDataSet {
  readonly columns: string[];
  readonly types: number[];
  readonly rows: Array<{ elements: TahuDataSetValue[] }>;
}
interface TahuTemplate {
  readonly templateRef: string;
  readonly isDefinition: boolean;
  readonly metrics: TahuMetric[];
}
interface TahuPayload {
  readonly timestamp: Long | number;
  readonly seq: Long | number;
  readonly metrics: TahuMetric[];
}

function tahuPayload(): { decode(b: Uint8Array): TahuPayload } {
  if (Payload === undefined) {
    const tahu = require('sparkplug-payload/lib/sparkplugPayloadProto.js') as {
      org: { eclipse: { tahu: { protobuf: { Payload: { decode(b: Uint8Array): TahuPayload } } } } };
    };
    Payload = tahu.org.eclipse.tahu.protobuf.Payload;
  }
  return Payload;
}

/** Decodes a Sparkplug B payload; throws on bytes that are not one (the caller dead-letters them). */
export function decodeSparkplug(bytes: Uint8Array): SparkplugPayload {
  const p = tahuPayload().decode(bytes);
  return {
    timestamp: Object.hasOwn(p, 'timestamp') ? Number(u64(p.timestamp)) : undefined,
    seq: Object.hasOwn(p, 'seq') ? Number(u64(p.seq)) : undefined,
    metrics: p.metrics.map(metricOf),
  };
}

/**
 * Only the payload's timestamp (field 1) and seq (field 3), the metrics skipped unread: what the
 * state feed needs of a data message (a full decode would double the work of every message).
 */
export function decodeSparkplugHead(bytes: Uint8Array): { timestamp: number | undefined; seq: number | undefined } {
  const r = (protobuf ??= require('protobufjs') as typeof protobufjs).Reader.create(bytes);
  let seq: number | undefined;
  let timestamp: number | undefined;
  while (r.pos < r.len) {
    const tag = r.uint32();
    if (tag >>> 3 === 1 && (tag & 7) === 0) timestamp = Number(r.uint64().toString());
    else if (tag >>> 3 === 3 && (tag & 7) === 0) seq = Number(r.uint64().toString());
    else r.skipType(tag & 7);
  }
  return { timestamp, seq };
}

function metricOf(m: TahuMetric): SparkplugMetric {
  const type = sparkplugTypes[m.datatype] ?? 'Unknown';
  return {
    name: Object.hasOwn(m, 'name') ? m.name : undefined,
    alias: Object.hasOwn(m, 'alias') ? u64(m.alias) : undefined,
    type,
    value: m.isNull ? null : metricValue(m, type),
    timestamp: Object.hasOwn(m, 'timestamp') ? Number(u64(m.timestamp)) : undefined,
    isNull: m.isNull === true,
    isHistorical: m.isHistorical === true,
    isTransient: m.isTransient === true,
    raw: m,
  };
}

/** The value of a metric read as `type` (the birth's type, for data that left theirs out). */
export function metricValue(m: TahuMetric, type: SparkplugType): SparkplugValue {
  if (m.isNull) return null;
  switch (type) {
    case 'Int8':
    case 'Int16':
    case 'Int32':
      return m.longValue !== null ? Number(BigInt.asIntN(32, u64(m.longValue))) : m.intValue === null ? null : m.intValue | 0;
    case 'UInt8':
    case 'UInt16':
    case 'UInt32':
      // v3 puts UInt32 in int_value; Tahu's older encoders put it in long_value
      return m.longValue !== null ? Number(u64(m.longValue)) : m.intValue === null ? null : m.intValue >>> 0;
    case 'Int64':
      return m.longValue === null ? null : BigInt.asIntN(64, u64(m.longValue));
    case 'UInt64':
      return m.longValue === null ? null : u64(m.longValue);
    case 'DateTime':
      return m.longValue === null ? null : Number(u64(m.longValue));
    case 'Float':
      return m.floatValue;
    case 'Double':
      return m.doubleValue;
    case 'Boolean':
      return m.booleanValue;
    case 'String':
    case 'Text':
    case 'UUID':
      return m.stringValue;
    case 'Bytes':
    case 'File':
      return m.bytesValue === null ? null : Buffer.from(m.bytesValue);
    case 'DataSet':
      return m.datasetValue === null ? null : dataSetOf(m.datasetValue);
    case 'Template':
      return m.templateValue === null
        ? null
        : {
            templateRef: m.templateValue.templateRef || undefined,
            isDefinition: m.templateValue.isDefinition === true,
            metrics: m.templateValue.metrics.map(metricOf),
          };
    case 'Unknown':
      // data without a datatype: whichever value field is set, read as the birth will say
      return m.longValue !== null
        ? u64(m.longValue)
        : (m.intValue ?? m.floatValue ?? m.doubleValue ?? m.booleanValue ?? m.stringValue ?? (m.bytesValue === null ? null : Buffer.from(m.bytesValue)));
    default:
      // PropertySet(List) and the array types: kept as bytes, refused by the influx mapping
      return m.bytesValue === null ? null : Buffer.from(m.bytesValue);
  }
}

function dataSetOf(d: TahuDataSet): SparkplugDataSet {
  const types = d.types.map((t) => sparkplugTypes[t] ?? 'Unknown');
  return {
    columns: [...d.columns],
    types,
    rows: d.rows.map((r) => r.elements.map((e, i) => metricValue({ ...emptyMetric, ...pickSet(e) }, types[i] ?? 'Unknown'))),
  };
}

const emptyMetric: TahuMetric = {
  name: '',
  alias: 0,
  timestamp: 0,
  datatype: 0,
  isNull: false,
  isHistorical: false,
  isTransient: false,
  intValue: null,
  longValue: null,
  floatValue: null,
  doubleValue: null,
  booleanValue: null,
  stringValue: null,
  bytesValue: null,
  datasetValue: null,
  templateValue: null,
};

function pickSet(e: TahuDataSetValue): Partial<TahuMetric> {
  const out: Record<string, unknown> = {};
  for (const k of ['intValue', 'longValue', 'floatValue', 'doubleValue', 'booleanValue', 'stringValue'] as const) {
    if (e[k] !== null && e[k] !== undefined) out[k] = e[k];
  }
  return out as Partial<TahuMetric>;
}

/** A protobuf uint64 (a Long, or a number when it fits) as an exact unsigned bigint. */
function u64(v: Long | number): bigint {
  if (typeof v === 'number') return BigInt(v);
  return (BigInt(v.high >>> 0) << 32n) | BigInt(v.low >>> 0);
}
