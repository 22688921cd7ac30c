// Sparkplug load for the benchmark, run as its own process: E edge nodes (one connection each,
// publishing in order) with D devices each; first every NBIRTH and DBIRTH, then `count` DDATA
// spread over the devices, each carrying its device's 6 metrics by alias only (no names, no
// datatypes), QoS 1 as fast as the broker takes them. Encoded with Eclipse Tahu's encoder.
// Prints one JSON line: births, data, metrics per DDATA.
import { parseArgs } from 'node:util';
import mqtt, { type MqttClient } from 'mqtt';
import sparkplug from 'sparkplug-payload';
import { alias, deviceMetrics } from '../src/simulator/sparkplug-simulator.ts';

const { values } = parseArgs({
  options: {
    url: { type: 'string', default: 'mqtt://127.0.0.1:21883' },
    group: { type: 'string', default: 'bench' },
    count: { type: 'string', default: '100000' },
    'edge-nodes': { type: 'string', default: '10' },
    devices: { type: 'string', default: '10' },
  },
});
const count = Number(values.count);
const edgeNodes = Number(values['edge-nodes']);
const devices = Number(values.devices);
const group = values.group as string;
const spb = sparkplug.get('spBv1.0') as { encodePayload(p: unknown): Uint8Array };
// the simulator's device metrics (a Double, a Float, an Int64 past 2^53, a UInt32, a Boolean, a String)
const metrics = deviceMetrics;

const clients: MqttClient[] = await Promise.all(
  Array.from({ length: edgeNodes }, (_, n) =>
    mqtt.connectAsync(values.url as string, { protocolVersion: 5, clientId: `bench-spb-${process.pid}-${n}`, properties: { receiveMaximum: 65535 } }),
  ),
);
const seqs = new Array<number>(edgeNodes).fill(0);
const node = (n: number) => `gw-${String(n).padStart(2, '0')}`;
const started = Date.now();
const publish = (n: number, topic: string, payload: unknown) =>
  (clients[n] as MqttClient).publishAsync(topic, Buffer.from(spb.encodePayload(payload)), { qos: 1 });

let births = 0;
for (let n = 0; n < edgeNodes; n++) {
  const now = Date.now();
  await publish(n, `spBv1.0/${group}/NBIRTH/${node(n)}`, {
    timestamp: now,
    seq: 0,
    metrics: [
      { name: 'bdSeq', type: 'UInt64', value: 0 },
      { name: 'Node Control/Rebirth', type: 'Boolean', value: false },
    ],
  });
  births++;
  for (let d = 0; d < devices; d++) {
    seqs[n] = ((seqs[n] as number) + 1) % 256;
    await publish(n, `spBv1.0/${group}/DBIRTH/${node(n)}/dev-${d}`, {
      timestamp: now,
      seq: seqs[n],
      metrics: metrics.map((m, k) => ({ name: m.name, alias: alias(d, k), type: m.type, value: m.value(0, d) })),
    });
    births++;
  }
}
const window = 2000;
let inflight = 0;
let done = 0;
let wake: (() => void) | undefined;
for (let i = 0; i < count; i++) {
  while (inflight >= window) await new Promise<void>((r) => (wake = r));
  const n = i % edgeNodes;
  const d = Math.floor(i / edgeNodes) % devices;
  seqs[n] = ((seqs[n] as number) + 1) % 256;
  inflight++;
  void publish(n, `spBv1.0/${group}/DDATA/${node(n)}/dev-${d}`, {
    timestamp: started + i,
    seq: seqs[n],
    metrics: metrics.map((m, k) => ({ alias: alias(d, k), type: m.type, value: m.value(i, d) })),
  }).then(() => {
    inflight--;
    done++;
    const w = wake;
    wake = undefined;
    w?.();
  });
}
while (done < count) await new Promise<void>((r) => (wake = r));
await Promise.all(clients.map((c) => c.endAsync()));
process.stdout.write(`${JSON.stringify({ births, data: count, metricsPerMessage: metrics.length, seconds: (Date.now() - started) / 1000 })}\n`);
