// sluice tap: watch live traffic through the rules without writing anything. It connects to
// the broker with the config's credentials on a clean session of its own (<clientId>-tap-<n>),
// subscribes to the rules' filters without the share prefix (never taking a message from the
// share group: the broker gives it copies), and prints for each message where it would go and
// what each sink would write, as `rules test` does.
import { randomBytes } from 'node:crypto';
import { loadConfig } from '../config/load.ts';
import { validateFilter } from '../mapping/topic-pattern.ts';
import { messageOf } from '../source/mqtt/mqtt-session.ts';
import { type Command, configFileOf, configHelp, configOptions, flag, numberOption, rulesOverrideOf, UsageError } from './command.ts';
import { connectOwnSession } from './own-session.ts';
import { evaluate, type Report } from './rules-evaluate.ts';

export const tapCommand: Command = {
  name: 'tap',
  summary: 'watch live messages through the rules: where each would go and what each sink would write, writing nothing',
  notes:
    'It joins no share group: a clean session of its own sees copies of the messages, the workers still get every one.\n' +
    'exit codes: 0 stopped (--limit, --for, Ctrl-C), 1 the broker refused or could not be reached, 2 usage',
  options: {
    ...configOptions,
    filter: { type: 'string', multiple: true },
    limit: { type: 'string' },
    for: { type: 'string' },
    json: { type: 'boolean' },
    timeout: { type: 'string' },
  },
  help: {
    ...configHelp,
    filter: "an MQTT filter to watch instead of the rules' subscriptions",
    limit: 'stop after this many messages (default: none)',
    for: 'stop after this many seconds (default: none)',
    json: 'one JSON object per message (default: a table)',
    timeout: 'milliseconds the broker has to accept the connection (default 10000)',
  },
  async run({ values, positionals }) {
    if (positionals.length > 0) throw new UsageError(`tap takes no arguments, got ${positionals.join(' ')} (--filter F to choose topics)`);
    const limit = values.limit === undefined ? Number.POSITIVE_INFINITY : numberOption(values, 'limit', 0, 1);
    const seconds = values.for === undefined ? Number.POSITIVE_INFINITY : numberOption(values, 'for', 0, 0);
    const timeoutMs = numberOption(values, 'timeout', 10_000, 100);
    const filters = (values.filter as string[] | undefined) ?? [];
    for (const f of filters) {
      try {
        validateFilter(f);
      } catch (err) {
        throw new UsageError(`--filter ${f}: ${(err as Error).message}`);
      }
    }
    const c = loadConfig(configFileOf(values), { rulesFile: rulesOverrideOf(values) });
    const m = c.service.mqtt;
    const subscriptions =
      filters.length > 0 ? filters.map((filter) => ({ filter, qos: 2 as const })) : c.rules.subscriptions.map((s) => ({ filter: s.filter, qos: s.qos }));
    if (subscriptions.length === 0) throw new UsageError('nothing to watch: the rules subscribe to nothing (--filter F)');
    const clientId = `${c.clientId}-tap-${randomBytes(3).toString('hex')}`;
    const client = await connectOwnSession(c, clientId, timeoutMs);
    const json = flag(values, 'json');
    let seen = 0;
    const done = Promise.withResolvers<void>();
    client.on('message', (_topic, _payload, packet) => {
      if (seen >= limit) return;
      seen++;
      const message = { ...messageOf(packet), receivedAt: Date.now() };
      const report = evaluate(c.rules, message);
      process.stdout.write(
        json
          ? `${JSON.stringify({ receivedAt: new Date(message.receivedAt).toISOString(), topic: message.topic, qos: message.qos, retain: message.retain, bytes: message.payload.length, ...report })}\n`
          : table(message.receivedAt, message.topic, message.qos, message.retain, message.payload.length, report),
      );
      if (seen >= limit) done.resolve();
    });
    client.on('close', () => done.resolve());
    // each filter at the QoS the rules give it, so a message arrives with the QoS the workers see
    const granted = await client.subscribeAsync(Object.fromEntries(subscriptions.map((s) => [s.filter, { qos: s.qos }])));
    const refused = granted.filter((g) => g.qos >= 0x80);
    if (refused.length === granted.length) {
      await client.endAsync(true);
      process.stderr.write(`sluice: tap: the broker refused every subscription (not authorised?): ${refused.map((g) => g.topic).join(', ')}\n`);
      return 1;
    }
    for (const g of refused) process.stderr.write(`tap: the broker refused ${g.topic} (reason 0x${g.qos.toString(16)})\n`);
    process.stderr.write(
      `tap: watching ${subscriptions.map((s) => s.filter).join(', ')} on ${m.url} as ${clientId} (not in the share group; nothing is written)\n`,
    );
    const timer = Number.isFinite(seconds) ? setTimeout(() => done.resolve(), seconds * 1000) : undefined;
    const stop = () => done.resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    await done.promise;
    clearTimeout(timer);
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    await client.endAsync(true).catch(() => {});
    process.stderr.write(`tap: ${seen} message(s)\n`);
    return 0;
  },
};

/** A message and what the rules make of it, for a terminal. */
function table(at: number, topic: string, qos: number, retain: boolean, bytes: number, r: Report): string {
  const lines = [
    `${new Date(at).toISOString().slice(11, 23)}  ${topic}  qos ${qos}${retain ? ' retained' : ''}  ${bytes} B  -> ${r.outcome}${r.routes.length ? ` (${r.routes.join(', ')})` : ''}`,
  ];
  for (const o of r.outputs) lines.push(`    ${o.sink.padEnd(7)} ${describe(o.item)}`);
  for (const d of r.deadLetters)
    lines.push(`    dead letter: ${d.reason}${d.route ? ` (route ${d.route}${d.sink ? `, ${d.sink}` : ''})` : ''}: ${d.error.slice(0, 200)}`);
  if (r.warning) lines.push(`    warning: ${r.warning}`);
  return `${lines.join('\n')}\n`;
}

function describe(item: unknown): string {
  if (typeof item === 'string') return item.length > 200 ? `${item.slice(0, 200)}...` : item;
  const o = item as Record<string, unknown>;
  if (typeof o.topic === 'string' && 'value' in o) return `topic ${o.topic} key ${String(o.key)} value ${String(o.value).slice(0, 120)}`;
  return JSON.stringify(item).slice(0, 200);
}
