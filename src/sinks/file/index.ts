// The file sink as a plugin: a route's `file: true`, the `file:` config section, one JSON line
// per message. README.md beside this file is its documentation.
import { dirname } from 'node:path';
import { z } from 'zod';
import type { Encoded, MatchInput, OutputCompiler, RouteOutput } from '../../router/route-output.ts';
import type { SinkPlugin } from '../plugin.ts';
import { directoryProbe } from '../probe.ts';
import { FileSink } from './file-sink.ts';

export const fileConfig = z
  .strictObject({
    path: z.string().min(1).describe("the JSON-lines file, relative to this file; appended to, fsync'd per batch"),
    batch: z
      .strictObject({
        maxLines: z.int().min(1).default(5000).describe('lines per write + fdatasync at most'),
        lingerMs: z.int().min(0).default(20).describe('how long a batch waits to fill; it goes at once when an ack window is full'),
      })
      .prefault({})
      .describe('batching of appends'),
  })
  .optional()
  .describe('required when a route has file: true');

type FileConfig = NonNullable<z.infer<typeof fileConfig>>;

/** One message as a JSON line: the payload as JSON on json routes, else as base64. */
export function jsonLine(input: MatchInput, json: boolean): string {
  const { message } = input;
  const p = message.properties;
  return JSON.stringify({
    receivedAt: new Date(message.receivedAt).toISOString(),
    route: input.route,
    topic: message.topic,
    levels: input.levels,
    qos: message.qos,
    ...(message.retain ? { retain: true } : {}),
    ...(p.userProperties ? { userProperties: p.userProperties } : {}),
    ...(p.contentType !== undefined ? { contentType: p.contentType } : {}),
    ...(p.correlationData !== undefined ? { correlationData: Buffer.from(p.correlationData).toString('base64') } : {}),
    ...(p.responseTopic !== undefined ? { responseTopic: p.responseTopic } : {}),
    ...(input.annotations ? { annotations: input.annotations } : {}),
    ...(json ? { payload: input.payload } : { payloadBase64: message.payload.toString('base64') }),
  });
}

const fileRouteCompiler: OutputCompiler = {
  key: 'file',
  compile: (_part, context): RouteOutput<string> => {
    const json = context.payload === 'json';
    return {
      sink: 'file',
      readsPayload: true,
      phase: 1,
      encode: (input): Encoded<string> => ({ item: jsonLine(input, json) }),
    };
  },
};

export const filePlugin: SinkPlugin = {
  name: 'file',
  route: { schema: z.boolean().default(false).describe('write every message of this route as a JSON line to the file sink'), compiler: fileRouteCompiler },
  config: fileConfig,
  paths: ['path'],
  create({ section }) {
    const f = section as FileConfig;
    return {
      sink: new FileSink(f.path), // resolved against the config's directory at load
      batch: { maxItems: f.batch.maxLines, maxBytes: 8_000_000, lingerMs: f.batch.lingerMs },
    };
  },
  async probe({ section }) {
    const f = section as FileConfig;
    const p = await directoryProbe(dirname(f.path));
    return { ok: p.ok, detail: `${f.path}: ${p.detail}` };
  },
};
