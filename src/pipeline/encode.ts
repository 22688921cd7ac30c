// Which outputs of a match are encoded in a phase, and every output of a routed message
// encoded at once (for `sluice rules test` and the routing tests: what each sink would write).
import type { Message } from '../message.ts';
import type { Refusal } from '../outcome.ts';
import type { RouteOutput } from '../router/route-output.ts';
import type { Match, Routed } from '../router/rule-set.ts';

/** An output is encoded in its phase, unless it reads the payload and the match has a problem (the route's refusal stands for it). */
export function encodes(match: Match, output: RouteOutput, phase: 0 | 1): boolean {
  return output.phase === phase && !(output.readsPayload && match.problem);
}

export interface EncodedOutput {
  readonly route: string;
  readonly sink: string;
  readonly item: unknown;
  readonly eventTimeMs?: number | undefined;
}

/** Every output, phase 0 then 1, without annotations (nothing was written), and every refusal. */
export function encodeAll(routed: Routed, message: Message, clientId: string): { outputs: EncodedOutput[]; refusals: Refusal[] } {
  const refusals: Refusal[] = [...routed.refusals];
  const outputs: EncodedOutput[] = [];
  for (const m of routed.matches) if (m.problem) refusals.push(m.problem);
  for (const phase of [0, 1] as const) {
    for (const m of routed.matches) {
      for (const o of m.outputs) {
        if (!encodes(m, o, phase)) continue;
        const e = o.encode({ message, route: m.route, levels: m.levels, payload: m.payload, clientId, annotations: undefined });
        if ('skip' in e) continue;
        if ('refusal' in e) refusals.push(e.refusal);
        else outputs.push({ route: m.route, sink: o.sink, item: e.item, ...(e.eventTimeMs === undefined ? {} : { eventTimeMs: e.eventTimeMs }) });
      }
    }
  }
  return { outputs, refusals };
}
