// Loaded into a worker under test with --import: on SIGUSR2 it prints one line saying what the
// process has loaded that a worker should not: Node's bundled undici (and http2 with it),
// mqtt-packet's cache of a Buffer per packet id (as MQTT.js resolves mqtt-packet), and any of
// @platformatic/kafka's own files (the worker loads the client bundled into one, vendor/).
import { createRequire, registerHooks } from 'node:module';

const loadedFiles = { library: 0, bundle: 0 };
registerHooks({
  load(url, context, nextLoad) {
    if (url.includes('/@platformatic/kafka/dist/')) loadedFiles.library++;
    if (url.endsWith('/vendor/platformatic-kafka.js')) loadedFiles.bundle++;
    return nextLoad(url, context);
  },
});

process.on('SIGUSR2', () => {
  const require = createRequire(import.meta.url);
  const mqttPacket = createRequire(require.resolve('mqtt')).resolve('mqtt-packet');
  const numbers = createRequire(mqttPacket)('./numbers.js') as { cache: Record<number, Buffer> };
  const loaded = (process as unknown as { moduleLoadList: readonly string[] }).moduleLoadList; // Node's own, untyped
  const line = {
    undici: loaded.some((m) => m.endsWith(' internal/deps/undici/undici')),
    http2: loaded.some((m) => m.endsWith(' http2')),
    packetIdBuffers: Object.keys(numbers.cache).length,
    kafkaLibraryFiles: loadedFiles.library,
    kafkaBundle: loadedFiles.bundle,
  };
  process.stdout.write(`loaded-probe ${JSON.stringify(line)}\n`);
});
