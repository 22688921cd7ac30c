// What a running worker keeps in memory that it never uses. A worker with a Kafka and an
// InfluxDB route, having written to both and served /metrics, must not have loaded Node's bundled
// undici (an ES import of node:http reads its lazy WebSocket getters and loads it: ~12 MiB RSS,
// 2.5 MiB of live heap), and MQTT.js's mqtt-packet must not have made its 65,536 packet-id
// Buffers (~7 MiB of live heap) at the first packet it wrote. A heap snapshot of an idle worker
// on the local stack took 38.8 MiB before both and 28.8 MiB after. Its Kafka client is the
// bundle (vendor/platformatic-kafka.js), none of @platformatic/kafka's ~330 files.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { repoRoot } from '../../deploy/local/stack-config.ts';
import { influxPoints, publishNumbered, waitFor } from '../support/e2e-helpers.ts';
import { sluiceFor } from '../support/sluice-process.ts';
import { mqttClient, printLogsOnFailure, unique } from '../support/stack.ts';

test('a worker that wrote to Kafka and InfluxDB and served /metrics loaded neither undici nor a packet-id cache, and its Kafka client as one file', {
  timeout: 120_000,
}, async (t) => {
  printLogsOnFailure(t);
  const p = unique('loaded');
  const measurement = p.replace(/-/g, '_');
  const sluice = sluiceFor(t, {
    rules: {
      subscriptions: [{ filter: `${p}/#`, qos: 1 }],
      routes: [
        {
          name: 'telemetry',
          match: `${p}/{site}/{deviceId}/telemetry`,
          kafka: { topic: `${p}.t`, key: '{deviceId}' },
          influx: { measurement, tags: ['deviceId'], fields: { seq: { path: '$.seq', type: 'integer' } }, time: '$.seq', timeUnit: 's' },
        },
      ],
    },
    nodeArgs: ['--import', join(repoRoot, 'test/support/loaded-probe.ts')],
  });
  await sluice.start();
  const pub = await mqttClient(t);
  await publishNumbered(pub, 200, (seq) => `${p}/site-1/d${seq % 7}/telemetry`);
  await waitFor('200 acked', async () => ((await sluice.metrics(['sluice_messages_acked_total'])).get('sluice_messages_acked_total') ?? 0) >= 200);
  assert.equal(await influxPoints(measurement, 200), 200, 'the InfluxDB writes went through the client');

  process.kill(sluice.pid as number, 'SIGUSR2');
  let probe: { undici: boolean; http2: boolean; packetIdBuffers: number; kafkaLibraryFiles: number; kafkaBundle: number } | undefined;
  await waitFor('the probe line', () => {
    const line = /loaded-probe (\{.*\})/.exec(sluice.logs)?.[1];
    if (line) probe = JSON.parse(line) as typeof probe;
    return probe !== undefined;
  });
  assert.deepEqual(probe, { undici: false, http2: false, packetIdBuffers: 0, kafkaLibraryFiles: 0, kafkaBundle: 1 });
});
