// A Sparkplug B v3 fleet, encoded with Eclipse Tahu's encoder: each edge node on a connection of
// its own with its NDEATH as will (bdSeq), NBIRTH and a DBIRTH per device on connect, then
// alias-only DDATA (seq 0-255, wrapping) with a counter past 2^53 to show int64 kept exact.
// It answers a rebirth request (NCMD Node Control/Rebirth), and can rebirth on its own
// (a new bdSeq: NDEATH, then births) to show a restarting gateway.
import mqtt, { type MqttClient } from 'mqtt';
import sparkplug from 'sparkplug-payload';

export interface SparkplugSimulatorOptions {
  readonly url: string;
  readonly group: string;
  readonly edgeNodes: number;
  readonly devicesPerNode: number;
  /** DDATA messages per second, for the whole fleet. */
  readonly rate: number;
  /** Every this many seconds one edge node restarts (NDEATH, new bdSeq, births); 0: never. */
  readonly rebirthEverySec: number;
}

export interface SparkplugSimulatorStats {
  births: number;
  data: number;
  deaths: number;
  metrics: number;
  rebirthRequests: number;
}

const encoder = sparkplug.get('spBv1.0') as {
  encodePayload(p: unknown): Uint8Array;
  decodePayload(b: Uint8Array): { metrics?: Array<{ name?: string; value?: unknown }> };
};

/** The device metrics: name, Sparkplug datatype, and a value per tick (the benchmark's load uses them too). */
export const deviceMetrics: ReadonlyArray<{ name: string; type: string; value: (tick: number, device: number) => unknown }> = [
  { name: 'Process/Temperature', type: 'Double', value: (t, d) => Math.round((20 + d + Math.sin(t / 10) * 5) * 100) / 100 },
  { name: 'Process/Pressure', type: 'Float', value: (t) => 1 + (t % 50) / 100 },
  { name: 'Counters/Cycles', type: 'Int64', value: (t, d) => (2n ** 53n + BigInt(d * 1_000_000 + t)).toString() },
  { name: 'Counters/Rejects', type: 'UInt32', value: (t) => Math.floor(t / 7) },
  { name: 'Status/Running', type: 'Boolean', value: (t) => t % 20 !== 0 },
  { name: 'Status/Mode', type: 'String', value: (t) => (t % 100 < 90 ? 'auto' : 'manual') },
];

interface EdgeNode {
  readonly name: string;
  readonly client: MqttClient;
  bdSeq: number;
  seq: number;
  tick: number;
  /** Dead (restarting): publishes nothing until its new connection has published its births. */
  down: boolean;
}

export class SparkplugSimulator {
  readonly stats: SparkplugSimulatorStats = { births: 0, data: 0, deaths: 0, metrics: 0, rebirthRequests: 0 };
  private readonly options: SparkplugSimulatorOptions;
  private nodes: EdgeNode[] = [];
  private timers: NodeJS.Timeout[] = [];

  constructor(options: SparkplugSimulatorOptions) {
    this.options = options;
  }

  async start(): Promise<void> {
    const o = this.options;
    this.nodes = await Promise.all(Array.from({ length: o.edgeNodes }, (_, i) => this.connect(`gw-${String(i + 1).padStart(2, '0')}`, 0)));
    const tickMs = 50;
    let debt = 0;
    let next = 0;
    const devices = o.edgeNodes * o.devicesPerNode;
    this.timers.push(
      setInterval(() => {
        for (debt += (o.rate * tickMs) / 1000; debt >= 1; debt--) {
          const d = next++ % devices;
          this.publishData(this.nodes[Math.floor(d / o.devicesPerNode)] as EdgeNode, d % o.devicesPerNode);
        }
      }, tickMs),
    );
    if (o.rebirthEverySec > 0) {
      let which = 0;
      this.timers.push(setInterval(() => void this.restart(which++ % this.nodes.length), o.rebirthEverySec * 1000));
    }
  }

  async stop(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    // a clean stop publishes the death itself (a will is only for a lost connection)
    for (const n of this.nodes) if (!n.down) this.publishDeath(n);
    await Promise.allSettled(this.nodes.map((n) => n.client.endAsync()));
  }

  private async connect(name: string, bdSeq: number): Promise<EdgeNode> {
    const o = this.options;
    const client = await mqtt.connectAsync(o.url, {
      protocolVersion: 5,
      clientId: `sluice-spb-${process.pid}-${name}`,
      reconnectPeriod: 1000,
      will: { topic: `spBv1.0/${o.group}/NDEATH/${name}`, payload: Buffer.from(death(bdSeq)), qos: 1, retain: false },
    });
    const node: EdgeNode = { name, client, bdSeq, seq: 0, tick: 0, down: false };
    await client.subscribeAsync(`spBv1.0/${o.group}/NCMD/${name}`, { qos: 0 });
    client.on('message', (_topic, payload) => {
      const cmd = encoder.decodePayload(payload);
      if (cmd.metrics?.some((m) => m.name === 'Node Control/Rebirth' && m.value === true)) {
        this.stats.rebirthRequests++;
        this.publishBirths(node);
      }
    });
    this.publishBirths(node);
    return node;
  }

  private async restart(i: number): Promise<void> {
    const old = this.nodes[i] as EdgeNode;
    if (old.down) return;
    this.publishDeath(old);
    old.down = true;
    await old.client.endAsync();
    this.nodes[i] = await this.connect(old.name, (old.bdSeq + 1) % 256);
  }

  private publishBirths(n: EdgeNode): void {
    const o = this.options;
    const now = Date.now();
    n.seq = 0;
    this.publish(
      n,
      `spBv1.0/${o.group}/NBIRTH/${n.name}`,
      {
        timestamp: now,
        seq: 0,
        metrics: [
          { name: 'bdSeq', type: 'UInt64', value: n.bdSeq },
          { name: 'Node Control/Rebirth', type: 'Boolean', value: false },
          { name: 'Properties/Firmware', type: 'String', value: '3.1.4' },
        ],
      },
      'birth',
    );
    for (let d = 0; d < o.devicesPerNode; d++) {
      this.publish(
        n,
        `spBv1.0/${o.group}/DBIRTH/${n.name}/${deviceName(d)}`,
        {
          timestamp: now,
          seq: this.nextSeq(n),
          metrics: deviceMetrics.map((m, k) => ({ name: m.name, alias: alias(d, k), type: m.type, value: m.value(n.tick, d), timestamp: now })),
        },
        'birth',
      );
    }
  }

  private publishData(n: EdgeNode, d: number): void {
    if (n.down) return;
    const now = Date.now();
    n.tick++;
    // alias only, no name, no datatype: the receiver must know the birth
    const metrics = deviceMetrics.map((m, k) => ({ alias: alias(d, k), type: m.type, value: m.value(n.tick, d), timestamp: now }));
    this.publish(n, `spBv1.0/${this.options.group}/DDATA/${n.name}/${deviceName(d)}`, { timestamp: now, seq: this.nextSeq(n), metrics }, 'data');
  }

  private publishDeath(n: EdgeNode): void {
    this.publish(n, `spBv1.0/${this.options.group}/NDEATH/${n.name}`, null, 'death', Buffer.from(death(n.bdSeq)));
  }

  private publish(
    n: EdgeNode,
    topic: string,
    payload: { timestamp: number; seq: number; metrics: unknown[] } | null,
    kind: 'birth' | 'data' | 'death',
    bytes?: Buffer,
  ): void {
    const body = bytes ?? Buffer.from(encoder.encodePayload(payload));
    n.client.publish(topic, body, { qos: 1 });
    if (kind === 'birth') this.stats.births++;
    else if (kind === 'data') this.stats.data++;
    else this.stats.deaths++;
    this.stats.metrics += payload?.metrics.length ?? 0;
  }

  private nextSeq(n: EdgeNode): number {
    n.seq = (n.seq + 1) % 256;
    return n.seq;
  }
}

function death(bdSeq: number): Uint8Array {
  return encoder.encodePayload({ timestamp: Date.now(), metrics: [{ name: 'bdSeq', type: 'UInt64', value: bdSeq }] });
}

function deviceName(d: number): string {
  return `press-${String(d + 1).padStart(2, '0')}`;
}

/** Aliases unique across the edge node (the spec's rule): 100 per device. */
export function alias(device: number, metric: number): number {
  return 100 + device * 100 + metric;
}
