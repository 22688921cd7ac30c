// The ceiling: a bare MQTT.js subscriber that acknowledges at once and writes nowhere, on the
// same shared subscription sluice uses. `--setup` makes the persistent session and exits; the
// real run resumes it and drains `--count` queued messages, then prints the timing.
import { parseArgs } from 'node:util';
import mqtt from 'mqtt';

const { values } = parseArgs({
  options: {
    url: { type: 'string', default: 'mqtt://127.0.0.1:21883' },
    filter: { type: 'string' },
    'client-id': { type: 'string' },
    count: { type: 'string', default: '0' },
    'receive-maximum': { type: 'string', default: '1000' },
    setup: { type: 'boolean', default: false },
  },
});
// The handler is in place before CONNACK: a resumed session's queued messages arrive with it.
const client = mqtt.connect(values.url, {
  protocolVersion: 5,
  clientId: values['client-id'] as string,
  clean: false,
  properties: { sessionExpiryInterval: 3600, receiveMaximum: Number(values['receive-maximum']) },
  resubscribe: false,
});
const count = Number(values.count);
let got = 0;
let first = 0;
const done = Promise.withResolvers<void>();
client.on('message', () => {
  if (got === 0) first = Date.now();
  if (++got === count) done.resolve();
});
await new Promise((resolve, reject) => {
  client.once('connect', resolve);
  client.once('error', reject);
});
if (values.setup) {
  await client.subscribeAsync(values.filter as string, { qos: 1 });
  await client.endAsync();
  process.exit(0);
}
await done.promise;
const seconds = (Date.now() - first) / 1000;
await client.endAsync();
process.stdout.write(`${JSON.stringify({ received: got, seconds, rate: Math.round(got / seconds) })}\n`);
