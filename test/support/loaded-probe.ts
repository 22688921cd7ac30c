// Loaded into a worker under test with --import: on SIGUSR2 it prints one line saying what the
// process has loaded that a worker should not: Node's bundled undici (and http2 with it), and
// mqtt-packet's cache of a Buffer per packet id (as MQTT.js resolves mqtt-packet).
import { createRequire } from 'node:module';

process.on('SIGUSR2', () => {
  const require = createRequire(import.meta.url);
  const mqttPacket = createRequire(require.resolve('mqtt')).resolve('mqtt-packet');
  const numbers = createRequire(mqttPacket)('./numbers.js') as { cache: Record<number, Buffer> };
  const loaded = (process as unknown as { moduleLoadList: readonly string[] }).moduleLoadList; // Node's own, untyped
  const line = {
    undici: loaded.some((m) => m.endsWith(' internal/deps/undici/undici')),
    http2: loaded.some((m) => m.endsWith(' http2')),
    packetIdBuffers: Object.keys(numbers.cache).length,
  };
  process.stdout.write(`loaded-probe ${JSON.stringify(line)}\n`);
});
