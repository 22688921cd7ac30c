// The InfluxDB sink as a plugin: a route's `influx:` part (line-protocol points), the
// `influx:` config section, and writes to /api/v2/write, a few batches at once (points are
// idempotent and carry their own time). README.md beside this file is its documentation.
import { resolveSecret } from '../../secrets.ts';
import type { SinkPlugin } from '../plugin.ts';
import { type InfluxConfig, influxConfig } from './config.ts';
import { influxRoute, influxRouteCompiler } from './influx-route.ts';
import { InfluxSink } from './influx-sink.ts';

export const influxPlugin: SinkPlugin = {
  name: 'influx',
  route: { schema: influxRoute.optional().describe("write this route's messages to InfluxDB as points"), compiler: influxRouteCompiler },
  config: influxConfig,
  create({ section }) {
    const i = section as InfluxConfig;
    return {
      sink: sinkOf(i),
      batch: { maxItems: i.batch.maxPoints, maxBytes: 4_000_000, lingerMs: i.batch.lingerMs, concurrency: i.batch.concurrency },
    };
  },
  probe: ({ section, timeoutMs }) => sinkOf({ ...(section as InfluxConfig), timeoutMs }).probe(),
};

function sinkOf(i: InfluxConfig): InfluxSink {
  return new InfluxSink({ url: i.url, token: i.token && resolveSecret(i.token, 'influx.token'), org: i.org, bucket: i.bucket, timeoutMs: i.timeoutMs });
}
