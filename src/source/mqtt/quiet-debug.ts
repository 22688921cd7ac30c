// mqtt-packet's debug, without its cost where a namespace is off. debug 4's `function
// debug(...args)` makes an array on every call even when nothing is logged, and mqtt-packet
// calls it about 20 times for each PUBLISH it parses: 2.4 KB of garbage per message (measured by
// `npm run bench -- --stages`), which makes the young generation fill and promote sooner. This
// module hands mqtt-packet a debug whose disabled namespaces are functions that allocate nothing;
// a namespace enabled when it is made (DEBUG=mqtt-packet:*) is the real debug, so diagnostics
// work as before. It must run before mqtt-packet is loaded: src/cli.ts imports it first.
// (npm "overrides" cannot do this: a file: override resolves relative to the dependent package,
// and it would apply to the replacement's own debug as well.)
import { createRequire } from 'node:module';

type Debug = ((...args: unknown[]) => void) & { namespace?: string; enabled: boolean; log?: unknown; extend?: unknown; destroy?: unknown };
type CreateDebug = ((namespace: string) => Debug) & Record<string, unknown>;

const require = createRequire(import.meta.url);

/** debug's factory, with quiet functions for the namespaces that are off when made. */
export function quietDebug(debug: CreateDebug): CreateDebug {
  const create = ((namespace: string): Debug => {
    const real = debug(namespace);
    if (real.enabled) return real;
    // fixed arity: nothing is allocated per call
    const quiet = function quietDebug(_a?: unknown, _b?: unknown, _c?: unknown, _d?: unknown): void {} as Debug;
    quiet.namespace = namespace;
    quiet.enabled = false;
    quiet.log = real.log;
    quiet.extend = (sub: string, delimiter = ':') => create(`${namespace}${delimiter}${sub}`);
    quiet.destroy = () => {};
    return quiet;
  }) as CreateDebug;
  for (const key of Object.keys(debug)) create[key] = debug[key];
  create.default = create;
  create.quiet = true;
  return create;
}

/** The file mqtt-packet loads as `debug` (resolved as MQTT.js's mqtt-packet resolves it). */
export function mqttPacketDebugPath(): string {
  const mqttPacket = createRequire(require.resolve('mqtt')).resolve('mqtt-packet');
  return createRequire(mqttPacket).resolve('debug');
}

const path = mqttPacketDebugPath();
require(path);
const cached = require.cache[path];
if (cached && !(cached.exports as { quiet?: boolean }).quiet) cached.exports = quietDebug(cached.exports as CreateDebug);
