// Load generator, run as its own process by the benchmark: N devices on
// org/site/zone/device-type/device-id/telemetry, ~200-byte JSON telemetry carrying its publish
// time, QoS 1 (or 2 with --qos 2; --kind command for .../command topics). --rate 0 publishes as
// fast as the broker takes it. A publish the broker refuses fails the run.
// Prints one JSON line with what it did.
//
// It shares the bench's two cores with the worker under test, so it writes its PUBLISH packets
// itself: MQTT.js spent 0.6 of a core at 35,000 msg/s and 0.8 at 65,000 (about 15 µs a message),
// which the broker and the worker then waited for. Here a message is its payload's text and a
// few header bytes, and the packets due together go out in one write per connection. mqtt-packet
// (MQTT.js's encoder) writes the CONNECT; the broker's answers are framed here and only their
// type, packet id and reason code read.
import { connect, type Socket } from 'node:net';
import { parseArgs } from 'node:util';
import mqttPacket from 'mqtt-packet';

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
if (qos !== 1 && qos !== 2) throw new Error(`--qos ${values.qos}: the load is QoS 1 or 2`);

// publishes awaiting their PUBACK (PUBCOMP for QoS 2) on one connection; Mosquitto refuses more
// than 20 QoS 2 in flight from one client ("Quota exceeded")
const window = qos === 2 ? 10 : 500;

const sites = ['malta-factory', 'lisbon-dc', 'gdansk-plant', 'porto-warehouse'];
const topics = Array.from({ length: devices }, (_, d) =>
  Buffer.from(`${values.prefix}/${sites[d % 4]}/floor-${String(d % 8).padStart(2, '0')}/temperature-sensor/ts-${10000 + d}/${values.kind}`),
);
const padding = 'x'.repeat(60);

/** ~200 bytes, like a real sensor reading: the text JSON.stringify gives for the same object, ASCII only. */
function payload(seq: number): string {
  return `{"seq":${seq},"ts":${Date.now()},"temperature":${20 + (seq % 100) / 10},"humidity":${40 + (seq % 30)},"battery":97.5,"status":"ok","fw":"2.4.1","note":"${padding}"}`;
}

const reasons: Record<number, string> = {
  128: 'Unspecified error',
  131: 'Implementation specific error',
  135: 'Not authorized',
  144: 'Topic Name invalid',
  145: 'Packet Identifier in use',
  147: 'Receive Maximum exceeded',
  151: 'Quota exceeded',
  153: 'Payload format invalid',
};
const reasonText = (code: number) => `${reasons[code] ?? 'reason code'} (0x${code.toString(16)})`;

let refused = 0;
let firstError = '';
let acked = 0;
let failed: Error | undefined;
let wake: (() => void) | undefined;
function wakeUp() {
  const w = wake;
  wake = undefined;
  w?.();
}
function fail(err: Error) {
  failed ??= err;
  wakeUp();
}

/** One MQTT 5 connection: its packets due in this turn, its packet ids in flight. */
class Connection {
  readonly socket: Socket;
  inflight = 0;
  private nextId = 0;
  private readonly used = new Uint8Array(65536);
  private pending: Buffer[] = [];
  private input: Buffer = Buffer.alloc(0);
  readonly connected: Promise<void>;
  private onConnack?: (err?: Error) => void;

  constructor(url: URL, clientId: string) {
    this.socket = connect({ host: url.hostname, port: Number(url.port || 1883), noDelay: true });
    this.connected = new Promise<void>((resolve, reject) => {
      this.onConnack = (err) => (err ? reject(err) : resolve());
      this.socket.once('error', reject);
    });
    this.socket.on('error', (err) => fail(err));
    this.socket.on('close', () => {
      this.onConnack?.(new Error(`${clientId}: the broker closed the connection before its CONNACK`));
      if (acked < count || this.inflight > 0) fail(new Error(`${clientId}: the broker closed the connection`));
    });
    this.socket.on('data', (chunk: Buffer) => this.read(chunk));
    this.socket.write(mqttPacket.generate({ cmd: 'connect', protocolVersion: 5, clientId, clean: true, keepalive: 0, properties: { receiveMaximum: 65535 } }));
  }

  /** Queues a PUBLISH for the next flush. */
  publish(topic: Buffer, text: string) {
    do this.nextId = (this.nextId % 65535) + 1;
    while (this.used[this.nextId] === 1);
    const id = this.nextId;
    this.used[id] = 1;
    this.inflight++;
    const body = text.length; // ASCII: a byte per character
    // topic length, topic, packet id, properties length (0), payload
    const remaining = 2 + topic.length + 2 + 1 + body;
    const lengthBytes = remaining < 128 ? 1 : remaining < 16_384 ? 2 : 3;
    const packet = Buffer.allocUnsafe(1 + lengthBytes + remaining);
    packet[0] = 0x30 | (qos << 1);
    let at = 1;
    for (let n = remaining; ; ) {
      const byte = n % 128;
      n = Math.floor(n / 128);
      packet[at++] = n > 0 ? byte | 0x80 : byte;
      if (n === 0) break;
    }
    at = packet.writeUInt16BE(topic.length, at);
    at += topic.copy(packet, at);
    at = packet.writeUInt16BE(id, at);
    packet[at++] = 0;
    packet.write(text, at, 'latin1');
    this.pending.push(packet);
  }

  /** Writes the packets queued since the last flush, in one write. */
  flush() {
    if (this.pending.length === 0) return;
    this.socket.write(this.pending.length === 1 ? (this.pending[0] as Buffer) : Buffer.concat(this.pending));
    this.pending = [];
  }

  private read(chunk: Buffer) {
    let data = this.input.length > 0 ? Buffer.concat([this.input, chunk]) : chunk;
    for (;;) {
      // fixed header, then the remaining length as a variable byte integer
      let length = 0;
      let at = 1;
      let complete = false;
      for (let shift = 0; at < data.length && at <= 4; shift += 7) {
        const byte = data[at++] as number;
        length += (byte & 0x7f) * 2 ** shift;
        if (byte < 0x80) {
          complete = true;
          break;
        }
      }
      if (!complete || data.length < at + length) break;
      this.packet((data[0] as number) >> 4, data.subarray(at, at + length));
      data = data.subarray(at + length);
    }
    this.input = data;
  }

  private packet(type: number, body: Buffer) {
    // a PUBACK, PUBREC or PUBCOMP may leave out its reason code (success) and properties
    const reason = body.length > 2 ? (body[2] as number) : 0;
    switch (type) {
      case 2: // CONNACK: flags, reason code
        this.onConnack?.((body[1] as number) === 0 ? undefined : new Error(`the broker refused the connection: ${reasonText(body[1] as number)}`));
        return;
      case 4: // PUBACK
      case 7: // PUBCOMP
        return this.settled(body.readUInt16BE(0), reason);
      case 5: {
        // PUBREC: a refusal ends the exchange; otherwise PUBREL
        const id = body.readUInt16BE(0);
        if (reason >= 0x80) return this.settled(id, reason);
        this.socket.write(Buffer.from([0x62, 0x02, id >> 8, id & 0xff]));
        return;
      }
      case 14: // DISCONNECT
        fail(new Error(`the broker disconnected: ${reasonText(body.length > 0 ? (body[0] as number) : 0)}`));
        return;
    }
  }

  private settled(id: number, reason: number) {
    if (this.used[id] !== 1) return fail(new Error(`an acknowledgement for packet id ${id}, which is not in flight`));
    this.used[id] = 0;
    this.inflight--;
    if (reason >= 0x80) {
      refused++;
      firstError ||= reasonText(reason);
    }
    acked++;
    wakeUp();
  }

  async close() {
    this.socket.end(Buffer.from([0xe0, 0x00]));
    await new Promise((r) => this.socket.once('close', r));
  }
}

const url = new URL(values.url);
const clients = Array.from({ length: connections }, (_, i) => new Connection(url, `bench-load-${process.pid}-${i}`));
await Promise.all(clients.map((c) => c.connected));

const started = Date.now();
const flush = () => {
  for (const c of clients) c.flush();
};
for (let seq = 0; seq < count && !failed; seq++) {
  if (rate > 0) {
    const due = started + (seq / rate) * 1000;
    const wait = due - Date.now();
    if (wait > 1) {
      flush();
      await new Promise((r) => setTimeout(r, wait));
    }
  }
  const client = clients[seq % connections] as Connection;
  while (client.inflight >= window && !failed) {
    flush();
    await new Promise<void>((r) => (wake = r));
  }
  client.publish(topics[seq % devices] as Buffer, payload(seq));
}
flush();
while (acked < count && !failed) await new Promise<void>((r) => (wake = r));
const seconds = (Date.now() - started) / 1000;
if (failed) {
  process.stderr.write(`load: ${failed.message} after ${acked} of ${count} publishes were acknowledged\n`);
  process.exit(1);
}
await Promise.all(clients.map((c) => c.close()));
if (refused > 0) {
  process.stderr.write(`load: the broker refused ${refused} of ${count} publishes (first: ${firstError})\n`);
  process.exit(1);
}
process.stdout.write(`${JSON.stringify({ published: acked, seconds, rate: Math.round(acked / seconds) })}\n`);
