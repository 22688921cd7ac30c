// A fleet of simulated devices on the field's hierarchy (org/site/zone/device-type/device-id/
// data-type): telemetry at QoS 1 with a timestamp in the payload, occasional set-point commands
// at QoS 2, and (optionally) a trickle of malformed messages to show the dead-letter path.
// Used by the demo, the benchmark and anyone who wants load on their own broker.
import mqtt, { type MqttClient } from 'mqtt';

export interface SimulatorOptions {
  readonly url: string;
  readonly org: string;
  readonly devices: number;
  /** Telemetry messages per second, for the whole fleet. */
  readonly rate: number;
  /** Commands per second, for the whole fleet. */
  readonly commandRate: number;
  /** Share of telemetry that is malformed (0..1). */
  readonly badRatio: number;
  readonly connections: number;
}

export interface SimulatorStats {
  telemetry: number;
  commands: number;
  bad: number;
  errors: number;
}

const sites = ['malta-factory', 'lisbon-dc', 'gdansk-plant', 'porto-warehouse'];
const types = [
  { type: 'temperature-sensor', prefix: 'ts' },
  { type: 'humidity-sensor', prefix: 'hs' },
  { type: 'power-meter', prefix: 'pm' },
];

export function deviceTopic(org: string, i: number, dataType: string): string {
  if (i === 0) return `${org}/malta-factory/floor-03/temperature-sensor/ts-4427/${dataType}`;
  const site = sites[i % sites.length] as string;
  const zone = `floor-${String((i >> 2) % 8).padStart(2, '0')}`;
  const t = types[i % types.length] as { type: string; prefix: string };
  return `${org}/${site}/${zone}/${t.type}/${t.prefix}-${4000 + i}/${dataType}`;
}

export class DeviceSimulator {
  readonly stats: SimulatorStats = { telemetry: 0, commands: 0, bad: 0, errors: 0 };
  private readonly options: SimulatorOptions;
  private clients: MqttClient[] = [];
  private timer: NodeJS.Timeout | undefined;
  private running = false;

  constructor(options: SimulatorOptions) {
    this.options = options;
  }

  async start(): Promise<void> {
    const o = this.options;
    this.clients = await Promise.all(
      Array.from({ length: o.connections }, (_, i) =>
        mqtt.connectAsync(o.url, { protocolVersion: 5, clientId: `sluice-sim-${process.pid}-${i}`, reconnectPeriod: 1_000 }),
      ),
    );
    this.running = true;
    const tickMs = 50;
    let device = 0;
    let telemetryDebt = 0;
    let commandDebt = 0;
    this.timer = setInterval(() => {
      telemetryDebt += (o.rate * tickMs) / 1000;
      commandDebt += (o.commandRate * tickMs) / 1000;
      for (; telemetryDebt >= 1; telemetryDebt--) {
        this.publishTelemetry(device);
        device = (device + 1) % o.devices;
      }
      for (; commandDebt >= 1; commandDebt--) this.publishCommand(Math.floor(Math.random() * o.devices));
    }, tickMs);
  }

  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearInterval(this.timer);
    await Promise.allSettled(this.clients.map((c) => c.endAsync()));
  }

  private client(device: number): MqttClient {
    return this.clients[device % this.clients.length] as MqttClient;
  }

  private publishTelemetry(device: number): void {
    const bad = this.options.badRatio > 0 && Math.random() < this.options.badRatio;
    const now = Date.now();
    const payload = bad
      ? '{"temperature": 21.5, "ts": ' // truncated JSON: dead-lettered as invalid-json
      : JSON.stringify({
          temperature: Math.round((18 + 8 * Math.sin(now / 60_000 + device) + Math.random()) * 100) / 100,
          humidity: Math.round((40 + 15 * Math.cos(now / 90_000 + device)) * 10) / 10,
          battery: Math.round((100 - (device % 50)) * 10) / 10,
          ts: now,
        });
    this.client(device).publish(deviceTopic(this.options.org, device, 'telemetry'), payload, { qos: 1 }, (err) => {
      if (err) this.stats.errors++;
    });
    if (bad) this.stats.bad++;
    else this.stats.telemetry++;
  }

  private publishCommand(device: number): void {
    if (!this.running) return;
    const payload = JSON.stringify({ command: 'set-point', value: 21 + (device % 4), issuedBy: 'operator-7', ts: Date.now() });
    this.client(device).publish(
      deviceTopic(this.options.org, device, 'command'),
      payload,
      {
        qos: 2,
        properties: { correlationData: Buffer.from(`cmd-${Date.now()}-${device}`), userProperties: { issuedBy: 'operator-7' } },
      },
      (err) => {
        if (err) this.stats.errors++;
      },
    );
    this.stats.commands++;
  }
}
