// What births said, per edge node and device: each metric's alias, name and datatype, so data
// that carry only aliases can be named. NBIRTH rebuilds a node (and forgets its devices), DBIRTH
// a device; NDEATH drops the node when its bdSeq is the birth's (a stale death is ignored),
// DDEATH the device (each keeps its last birth in memory, for its data still in flight). seq (0-255) is followed per edge node and its gaps counted. The state is
// saved to a file (write then rename) shortly after every change and at close, so a restarted
// worker still names the data of edge nodes that were born before.
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { metricValue, type SparkplugMetric, type SparkplugPayload, type SparkplugType, sparkplugTypes } from './sparkplug-payload.ts';
import type { SparkplugTopic } from './sparkplug-topic.ts';

interface Definition {
  readonly name: string;
  readonly type: SparkplugType;
}

interface Born {
  /** The birth's payload timestamp (ms): an older birth arriving late changes nothing. */
  readonly bornAt: number;
  readonly byAlias: Map<string, Definition>;
  readonly byName: Map<string, SparkplugType>;
  /**
   * The birth this one replaced (one generation back, in memory only): data published before
   * the rebirth but routed after it (the state feed runs ahead of a worker's backlog) are named
   * from the birth they were published under, by their payload time.
   */
  readonly previous?: Born | undefined;
}

interface NodeState extends Born {
  readonly bdSeq: string | undefined;
  readonly devices: Map<string, Born>;
  readonly previous?: NodeState | undefined;
}

export interface SparkplugStateOptions {
  /** Where the state is kept across restarts; undefined: in memory only. */
  readonly file?: string | undefined;
  /** A seq that did not follow the last one of its edge node. */
  readonly onGap?: (topic: SparkplugTopic, expected: number, got: number) => void;
  /** The file could not be read or written (the state still works in memory; a write is tried again at the next change). */
  readonly onFileError?: (err: Error, action: 'read' | 'write') => void;
  /** The file was written (after a failed write: it is current again). */
  readonly onFileWritten?: () => void;
  readonly saveDelayMs?: number;
}

export type Resolution = { readonly ok: true } | { readonly ok: false; readonly error: string };

const fileVersion = 1;
/** The messages of an edge node that carry its seq (a death's will and hosts' commands do not). */
const seqBearing = new Set(['NBIRTH', 'NDATA', 'DBIRTH', 'DDATA', 'DDEATH']);

export class SparkplugState {
  private readonly nodes = new Map<string, NodeState>();
  /** The last seq seen per edge node (kept apart from births: data move it). */
  private readonly seqs = new Map<string, number>();
  /** The last birth of each edge node that died (one per node, in memory only). */
  private readonly dead = new Map<string, NodeState & { readonly diedAt: number }>();
  /** The last birth of each device that died (by `group/edgeNode/device`, in memory only). */
  private readonly deadDevices = new Map<string, Born & { readonly diedAt: number }>();
  /** The latest message of each edge node the state feed took (payload time, seq). */
  private readonly fed = new Map<string, { timestamp: number; seq: number | undefined }>();
  private readonly options: SparkplugStateOptions;
  private saveTimer: NodeJS.Timeout | undefined;

  constructor(options: SparkplugStateOptions = {}) {
    this.options = options;
    if (options.file) this.load(options.file);
  }

  /** Edge nodes with a birth on record. */
  get nodeCount(): number {
    return this.nodes.size;
  }

  /** The edge nodes on record, as group and edge node id. */
  edgeNodes(): Array<{ readonly group: string; readonly edgeNode: string }> {
    return [...this.nodes.keys()].map((key) => {
      const slash = key.indexOf('/');
      return { group: key.slice(0, slash), edgeNode: key.slice(slash + 1) };
    });
  }

  /**
   * Takes in what a message says about the state: births, deaths, and (when `followSeq`) its
   * seq. Idempotent for births and deaths: the same birth from two subscriptions is one birth.
   */
  observe(topic: SparkplugTopic, payload: SparkplugPayload, followSeq: boolean): void {
    const key = nodeKey(topic);
    if (followSeq && payload.seq !== undefined && seqBearing.has(topic.messageType)) this.followSeq(topic, key, payload.seq);
    switch (topic.messageType) {
      case 'NBIRTH': {
        const current = this.nodes.get(key);
        const bornAt = payload.timestamp ?? 0;
        const value = payload.metrics.find((m) => m.name === 'bdSeq')?.value;
        const bdSeq = value === undefined || value === null ? undefined : String(value);
        if (current && current.bornAt > bornAt) return;
        // the same birth again (from the feed and from the share group): keep the devices born since
        if (current && current.bornAt === bornAt && current.bdSeq === bdSeq) return;
        const before = current ?? this.dead.get(key);
        this.dead.delete(key);
        // the node's devices died with its old session: its previous birth still names their late data
        this.nodes.set(key, { ...born(payload, bornAt), bdSeq, devices: new Map(), previous: before && { ...before, previous: undefined } });
        this.changed();
        return;
      }
      case 'DBIRTH': {
        const node = this.nodes.get(key);
        const bornAt = payload.timestamp ?? 0;
        const deviceKey = `${key}/${topic.device}`;
        const died = this.deadDevices.get(deviceKey);
        this.deadDevices.delete(deviceKey);
        if (!node) {
          // a device born before we saw its node: keep it under a node with no definitions
          this.nodes.set(key, {
            bornAt: 0,
            byAlias: new Map(),
            byName: new Map(),
            bdSeq: undefined,
            devices: new Map([[topic.device, born(payload, bornAt)]]),
          });
        } else {
          const current = node.devices.get(topic.device);
          if (current && current.bornAt > bornAt) return;
          const before = current ?? died;
          node.devices.set(topic.device, { ...born(payload, bornAt), previous: before && { ...before, previous: undefined } });
        }
        this.changed();
        return;
      }
      case 'NDEATH': {
        const node = this.nodes.get(key);
        if (!node) return;
        const bdSeq = payload.metrics.find((m) => m.name === 'bdSeq')?.value;
        // the will of an older connection, arriving after the new birth, must not erase it
        if (node.bdSeq !== undefined && bdSeq !== undefined && bdSeq !== null && String(bdSeq) !== node.bdSeq) return;
        this.nodes.delete(key);
        // kept in memory: its data still in flight (published before the death) can be named
        remember(this.dead, key, { ...node, previous: undefined, diedAt: payload.timestamp ?? 0 });
        this.seqs.delete(key);
        this.changed();
        return;
      }
      case 'DDEATH': {
        const node = this.nodes.get(key);
        const device = node?.devices.get(topic.device);
        if (!node || !device) return;
        // a stale death (published before the device's current birth) changes nothing
        if (payload.timestamp !== undefined && payload.timestamp < device.bornAt) return;
        node.devices.delete(topic.device);
        // kept in memory: its data still in flight (published before the death) can be named
        remember(this.deadDevices, `${key}/${topic.device}`, { ...device, previous: undefined, diedAt: payload.timestamp ?? 0 });
        this.changed();
        return;
      }
      default:
    }
  }

  /** A data message's seq, followed (the state feed reads only that of NDATA/DDATA). */
  followData(topic: SparkplugTopic, seq: number | undefined): void {
    if (seq !== undefined) this.followSeq(topic, nodeKey(topic), seq);
  }

  /** The state feed took this message of the edge node (its latest, by payload time and seq). */
  fedTo(topic: SparkplugTopic, head: { timestamp: number | undefined; seq: number | undefined }): void {
    if (head.timestamp !== undefined) this.fed.set(nodeKey(topic), { timestamp: head.timestamp, seq: head.seq });
  }

  /**
   * Whether the state feed has passed this message (so a birth before it would be known): then
   * an unknown alias is unknown for good; otherwise the feed may still bring the birth.
   */
  feedPassed(topic: SparkplugTopic, head: { timestamp: number | undefined; seq: number | undefined }): boolean {
    const last = this.fed.get(nodeKey(topic));
    if (!last || head.timestamp === undefined) return false;
    return last.timestamp > head.timestamp || (last.timestamp === head.timestamp && last.seq === head.seq);
  }

  /**
   * Names and types the metrics of a data message (in place) from its birth: an alias-only
   * metric takes its birth's name; a metric without a datatype takes its birth's. Anything it
   * cannot name is an error listing the aliases.
   */
  resolve(topic: SparkplugTopic, payload: SparkplugPayload): Resolution {
    const key = nodeKey(topic);
    const at = payload.timestamp;
    const dead = this.dead.get(key);
    // a dead node names only what was published before its death
    const node = bornBy(this.nodes.get(key), at) ?? (dead && at !== undefined && at <= dead.diedAt ? bornBy(dead, at) : undefined);
    const deadDevice = topic.device === '' ? undefined : this.deadDevices.get(`${key}/${topic.device}`);
    // a dead device, like a dead node, names only what was published before its death
    const device =
      topic.device === ''
        ? undefined
        : (bornBy(node?.devices.get(topic.device), at) ?? (deadDevice && at !== undefined && at <= deadDevice.diedAt ? bornBy(deadDevice, at) : undefined));
    let unknown: string[] | undefined;
    for (const m of payload.metrics) {
      if (m.name === undefined && m.alias !== undefined) {
        const key = String(m.alias);
        const def = device?.byAlias.get(key) ?? node?.byAlias.get(key);
        if (!def) {
          (unknown ??= []).push(key);
          continue;
        }
        m.name = def.name;
        if (m.type === 'Unknown') retype(m, def.type);
      } else if (m.type === 'Unknown' && m.name !== undefined) {
        const type = device?.byName.get(m.name) ?? node?.byName.get(m.name);
        if (type) retype(m, type);
      }
    }
    if (!unknown) return { ok: true };
    const where = topic.device === '' ? `edge node ${topic.group}/${topic.edgeNode}` : `device ${topic.group}/${topic.edgeNode}/${topic.device}`;
    const had = topic.device === '' ? node : device;
    return {
      ok: false,
      error: `alias ${unknown.slice(0, 10).join(', ')}${unknown.length > 10 ? ` (+${unknown.length - 10})` : ''} not defined by a birth of ${where}${had ? '' : ` (no ${topic.device === '' ? 'NBIRTH' : 'DBIRTH'} on record)`}`,
    };
  }

  /** Saves now (at close). */
  flush(): void {
    if (this.saveTimer) {
      clearTimeout(this.saveTimer);
      this.saveTimer = undefined;
    }
    if (this.options.file) this.save(this.options.file);
  }

  private followSeq(topic: SparkplugTopic, key: string, seq: number): void {
    const last = this.seqs.get(key);
    this.seqs.set(key, seq);
    if (topic.messageType === 'NBIRTH' || last === undefined) return;
    const expected = (last + 1) % 256;
    if (seq !== expected) this.options.onGap?.(topic, expected, seq);
  }

  private changed(): void {
    if (!this.options.file || this.saveTimer) return;
    this.saveTimer = setTimeout(() => {
      this.saveTimer = undefined;
      this.save(this.options.file as string);
    }, this.options.saveDelayMs ?? 100);
    this.saveTimer.unref();
  }

  private save(file: string): void {
    const nodes = [...this.nodes].map(([key, n]) => ({
      key,
      bdSeq: n.bdSeq,
      ...bornJson(n),
      devices: [...n.devices].map(([device, d]) => ({ device, ...bornJson(d) })),
    }));
    try {
      mkdirSync(dirname(file), { recursive: true });
      writeFileSync(`${file}.tmp`, JSON.stringify({ version: fileVersion, nodes }));
      renameSync(`${file}.tmp`, file);
      this.options.onFileWritten?.();
    } catch (err) {
      // the previous file stays whole (the rename never happened); a half-written copy would
      // only hold space on a disk that is full
      rmSync(`${file}.tmp`, { force: true });
      this.options.onFileError?.(err as Error, 'write');
    }
  }

  private load(file: string): void {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.options.onFileError?.(err as Error, 'read');
      return;
    }
    try {
      const saved = JSON.parse(text) as SavedFile;
      if (saved.version !== fileVersion) throw new Error(`version ${String(saved.version)}, expected ${fileVersion}`);
      for (const n of saved.nodes) {
        this.nodes.set(n.key, { ...bornOfJson(n), bdSeq: n.bdSeq, devices: new Map(n.devices.map((d) => [d.device, bornOfJson(d)])), previous: undefined });
      }
    } catch (err) {
      this.options.onFileError?.(new Error(`${file}: ${(err as Error).message}`), 'read');
    }
  }
}

interface SavedBorn {
  readonly bornAt: number;
  readonly metrics: ReadonlyArray<readonly [string | null, string, SparkplugType]>;
}
interface SavedFile {
  readonly version: number;
  readonly nodes: ReadonlyArray<
    SavedBorn & { readonly key: string; readonly bdSeq: string | undefined; readonly devices: ReadonlyArray<SavedBorn & { readonly device: string }> }
  >;
}

/**
 * The birth `at` (a payload time) was published under: this one, or the one it replaced when
 * `at` is older than this birth. Without a time: this one.
 */
function bornBy<B extends Born>(b: B | undefined, at: number | undefined): B | undefined {
  if (!b || at === undefined || at >= b.bornAt) return b;
  return (b.previous && at >= b.previous.bornAt ? b.previous : b) as B;
}

/**
 * The deaths kept for late data are bounded: a fleet whose device ids churn (a new id per
 * boot) must not grow them for ever. The oldest death goes first; its late data, if any still
 * come, are dead-lettered as unknown aliases, never misnamed.
 */
const deathsKept = 10_000;

function remember<V>(deaths: Map<string, V>, key: string, value: V): void {
  deaths.delete(key);
  deaths.set(key, value);
  if (deaths.size > deathsKept) deaths.delete(deaths.keys().next().value as string);
}

function nodeKey(topic: SparkplugTopic): string {
  return `${topic.group}/${topic.edgeNode}`;
}

function born(payload: SparkplugPayload, bornAt: number): Born {
  const byAlias = new Map<string, Definition>();
  const byName = new Map<string, SparkplugType>();
  for (const m of payload.metrics) {
    if (m.name === undefined) continue;
    byName.set(m.name, m.type);
    if (m.alias !== undefined) byAlias.set(String(m.alias), { name: m.name, type: m.type });
  }
  return { bornAt, byAlias, byName };
}

function bornJson(b: Born): SavedBorn {
  const aliasOf = new Map([...b.byAlias].map(([alias, d]) => [d.name, alias]));
  return { bornAt: b.bornAt, metrics: [...b.byName].map(([name, type]) => [aliasOf.get(name) ?? null, name, type] as const) };
}

function bornOfJson(s: SavedBorn): Born {
  const byAlias = new Map<string, Definition>();
  const byName = new Map<string, SparkplugType>();
  for (const [alias, name, type] of s.metrics) {
    if (!sparkplugTypes.includes(type)) continue;
    byName.set(name, type);
    if (alias !== null) byAlias.set(alias, { name, type });
  }
  return { bornAt: s.bornAt, byAlias, byName };
}

function retype(m: SparkplugMetric, type: SparkplugType): void {
  m.type = type;
  m.value = metricValue(m.raw, type);
}
