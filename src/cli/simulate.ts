// sluice simulate: a fleet of simulated devices publishing to a broker until SIGINT/SIGTERM.
// The simulators are imported when the command runs: every other command (run above all) would
// otherwise load Tahu's Sparkplug encoder and its protobufjs for nothing.
import { type Command, numberOption, UsageError } from './command.ts';

export const simulateCommand: Command = {
  name: 'simulate',
  summary: 'a fleet of simulated devices publishing telemetry (QoS 1) and commands (QoS 2), or with --sparkplug a Sparkplug B fleet, to a broker',
  options: {
    url: { type: 'string' },
    devices: { type: 'string' },
    rate: { type: 'string' },
    'command-rate': { type: 'string' },
    'bad-ratio': { type: 'string' },
    connections: { type: 'string' },
    sparkplug: { type: 'boolean' },
    group: { type: 'string' },
    'edge-nodes': { type: 'string' },
    'rebirth-every': { type: 'string' },
  },
  help: {
    url: 'broker URL (default mqtt://127.0.0.1:21883)',
    devices: 'devices (default 1000)',
    rate: 'telemetry messages/s for the fleet (default 1000)',
    'command-rate': 'commands/s (default 2)',
    'bad-ratio': 'share of malformed telemetry, 0..1 (default 0)',
    connections: 'publishing connections (default 4)',
    sparkplug: 'a Sparkplug B fleet instead: births, alias-only DDATA, deaths, rebirths (--devices per edge node, default 5; --rate DDATA/s, default 100)',
    group: 'Sparkplug group id (default plant-1)',
    'edge-nodes': 'Sparkplug edge nodes, one connection each (default 10)',
    'rebirth-every': 'seconds between one edge node restarting (NDEATH, new bdSeq, births); 0: never (default 30)',
  },
  async run({ values }) {
    const url = (values.url as string | undefined) ?? 'mqtt://127.0.0.1:21883';
    if (!/^(mqtts?|wss?):\/\/[^/]/.test(url)) throw new UsageError(`--url ${url}: an mqtt://, mqtts://, ws:// or wss:// URL of the broker`);
    const sim = values.sparkplug
      ? new (await import('../simulator/sparkplug-simulator.ts')).SparkplugSimulator({
          url,
          group: (values.group as string | undefined) ?? 'plant-1',
          edgeNodes: numberOption(values, 'edge-nodes', 10, 1),
          devicesPerNode: numberOption(values, 'devices', 5, 1),
          rate: numberOption(values, 'rate', 100),
          rebirthEverySec: numberOption(values, 'rebirth-every', 30),
        })
      : new (await import('../simulator/device-simulator.ts')).DeviceSimulator({
          url,
          org: 'acme',
          devices: numberOption(values, 'devices', 1000, 1),
          rate: numberOption(values, 'rate', 1000),
          commandRate: numberOption(values, 'command-rate', 2),
          badRatio: numberOption(values, 'bad-ratio', 0),
          connections: numberOption(values, 'connections', 4, 1),
        });
    await sim.start();
    const report = setInterval(() => process.stderr.write(`simulate: ${JSON.stringify(sim.stats)}\n`), 5_000);
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
    clearInterval(report);
    await sim.stop();
    process.stderr.write(`simulate: stopped ${JSON.stringify(sim.stats)}\n`);
    return 0;
  },
};
