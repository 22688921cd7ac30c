// Load generator, run as its own process by the benchmark: N devices on
// org/site/zone/device-type/device-id/telemetry, ~200-byte JSON telemetry carrying its publish
// time, QoS 1 (or 2 with --qos 2; --kind command for .../command topics). --rate 0 publishes as
// fast as the broker takes it. A publish the broker refuses fails the run.
// Prints one JSON line with what it did.
import { parseArgs } from 'node:util';
import mqtt, { type MqttClient } from 'mqtt';

const { values } = parseArgs({
  options: {
    url: { type: 'string', default: 'mqtt://127.0.0.1:21883' },
    prefix: { type: 'string', default: 'bench' },
    count: { type: 'string', default: '100000' },
    devices: { type: 'string', default: '1000' },
    rate: { type: 'string', default: '0' },
    qos: { type: 'string', default: '1' },
    connections: { type: 'string', default: '4' },
    kind: { type: 'string', default: 'telemetry' },
  },
});
const count = Number(values.count);
const devices = Number(values.devices);
const rate = Number(values.rate);
const qos = Number(values.qos) as 1 | 2;
const connections = Number(values.connections);

const clients: MqttClient[] = await Promise.all(
  Array.from({ length: connections }, (_, i) =>
    mqtt.connectAsync(values.url, { protocolVersion: 5, clientId: `bench-load-${process.pid}-${i}`, properties: { receiveMaximum: 65535 } }),
  ),
);

const sites = ['malta-factory', 'lisbon-dc', 'gdansk-plant', 'porto-warehouse'];
const topics = Array.from(
  { length: devices },
  (_, d) => `${values.prefix}/${sites[d % 4]}/floor-${String(d % 8).padStart(2, '0')}/temperature-sensor/ts-${10000 + d}/${values.kind}`,
);
const padding = 'x'.repeat(60);

function payload(seq: number): string {
  // ~200 bytes, like a real sensor reading
  return JSON.stringify({
    seq,
    ts: Date.now(),
    temperature: 20 + (seq % 100) / 10,
    humidity: 40 + (seq % 30),
    battery: 97.5,
    status: 'ok',
    fw: '2.4.1',
    note: padding,
  });
}

const started = Date.now();
let sent = 0;
// publishes awaiting their PUBACK, across connections; Mosquitto refuses more than 20 QoS 2
// in flight from one client ("Quota exceeded")
const window = qos === 2 ? connections * 10 : 2000;
let refused = 0;
let firstError = '';
let inflight = 0;
let wake: (() => void) | undefined;

for (let seq = 0; seq < count; seq++) {
  if (rate > 0) {
    const due = started + (seq / rate) * 1000;
    const wait = due - Date.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
  }
  while (inflight >= window) await new Promise<void>((r) => (wake = r));
  inflight++;
  const client = clients[seq % connections] as MqttClient;
  client.publish(topics[seq % devices] as string, payload(seq), { qos }, (err) => {
    if (err) {
      refused++;
      firstError ||= err.message;
    }
    inflight--;
    sent++;
    const w = wake;
    wake = undefined;
    w?.();
  });
}
while (sent < count) await new Promise<void>((r) => (wake = r));
const seconds = (Date.now() - started) / 1000;
await Promise.all(clients.map((c) => c.endAsync()));
if (refused > 0) {
  process.stderr.write(`load: the broker refused ${refused} of ${count} publishes (first: ${firstError})\n`);
  process.exit(1);
}
process.stdout.write(`${JSON.stringify({ published: sent, seconds, rate: Math.round(sent / seconds) })}\n`);
