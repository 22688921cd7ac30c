// What the rules do with one message, as `rules test` prints it and its cases compare it: the
// outcome in one word, the routes, each sink's items in a printable form, the dead letter.
import { filterMatches } from '../mapping/topic-pattern.ts';
import type { Message } from '../message.ts';
import type { Refusal } from '../outcome.ts';
import { encodeAll } from '../pipeline/encode.ts';
import type { RuleSet } from '../router/rule-set.ts';
import { sinkPlugins } from '../sinks/registry.ts';
import { UsageError } from './command.ts';

/** What the rules do with one message: its outcome in a word, the routes, each sink's items (printable), the dead letter. */
export function evaluate(rules: RuleSet, message: Message): Report {
  const routed = rules.route(message);
  const { outputs, refusals } = encodeAll(routed, message, 'rules-test');
  const subscribed = rules.subscriptions.filter((s) => filterMatches(s.filter, message.topic));
  return {
    outcome: outcomeOf(routed.outcome, routed.matches.length, refusals.length),
    routes: routed.matches.map((m) => m.route),
    outputs: outputs.map((o) => ({ route: o.route, sink: o.sink, item: printable(o.sink, o.item) })),
    deadLetters: refusals,
    ...(subscribed.length === 0
      ? {
          warning: `no subscription covers ${message.topic}: sluice would never receive it (subscriptions: ${rules.subscriptions.map((s) => s.filter).join(', ')})`,
        }
      : {}),
  };
}

export interface Report {
  readonly outcome: string;
  readonly routes: readonly string[];
  readonly outputs: ReadonlyArray<{ readonly route: string; readonly sink: string; readonly item: unknown }>;
  readonly deadLetters: readonly Refusal[];
  readonly warning?: string;
}

/** Routes a Sparkplug birth so alias-only data after it can be named; the refusal's words if it was not taken. */
export function routeBirth(rules: RuleSet, topic: string, payload: Buffer): string | undefined {
  const birth: Message = { topic, payload, qos: 1, retain: false, properties: {}, receivedAt: Date.now() };
  const r = encodeAll(rules.route(birth), birth, 'rules-test');
  return r.refusals.length > 0 ? r.refusals.map((x) => `${x.reason}: ${x.error}`).join('; ') : undefined;
}

/** What happens to the message, in one word: routed (written), dead-lettered, unmatched-dropped, expired. */
function outcomeOf(outcome: string, matched: number, refused: number): string {
  if (outcome !== 'routed') return outcome;
  if (refused > 0) return matched === 0 ? 'unmatched-dead-lettered' : 'dead-lettered';
  return 'routed';
}

export function base64Of(text: string, what: string): Buffer {
  const clean = text.replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(clean)) throw new UsageError(`${what} is not base64`);
  return Buffer.from(clean, 'base64');
}

/** An item as `rules test` and `tap` print it: its sink's own description (binary as text or base64), else as it is. */
export function printable(sink: string, item: unknown): unknown {
  return sinkPlugins.find((p) => p.name === sink)?.describe?.(item) ?? item;
}
