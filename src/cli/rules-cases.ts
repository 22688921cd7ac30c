// `sluice rules test --cases FILE`: unit tests for a rules file. Each case is a message (topic,
// payload, QoS, user properties, Sparkplug births before it) and what must come out: the
// outcome, each sink's items and the dead letter. Items are compared as `rules test` prints
// them; an expected object names only the fields it cares about, a string between slashes is a
// regular expression, and a sink the case does not name must write nothing.
import { isDeepStrictEqual } from 'node:util';
import { z } from 'zod';
import { loadYamlFile } from '../config/yaml-file.ts';
import type { Message } from '../message.ts';
import type { RuleSet } from '../router/rule-set.ts';
import { base64Of, evaluate, type Report, routeBirth } from './rules-evaluate.ts';

const outcomes = ['routed', 'dead-lettered', 'unmatched-dead-lettered', 'unmatched-dropped', 'expired'] as const;

const payloadOf = {
  payload: z.string().optional().describe('the payload as text'),
  payloadBase64: z.string().optional().describe('the payload as base64 (a Sparkplug B payload, any binary)'),
};

export const casesFile = z.strictObject({
  cases: z
    .array(
      z
        .strictObject({
          name: z.string().min(1).describe('what the case shows'),
          topic: z.string().min(1),
          ...payloadOf,
          qos: z.union([z.literal(0), z.literal(1), z.literal(2)]).default(1),
          retain: z.boolean().default(false),
          properties: z.record(z.string(), z.string()).optional().describe('MQTT user properties'),
          receivedAt: z.string().default('2026-01-01T00:00:00.000Z').describe('the receive time (ISO 8601): fixed, so items timed by it compare'),
          births: z
            .array(z.strictObject({ topic: z.string().min(1), payloadBase64: z.string() }))
            .default([])
            .describe('Sparkplug births routed first, so alias-only data can be named'),
          expect: z.record(z.string(), z.unknown()).describe('outcome, one list per sink (kafka, influx, audit, file...), deadLetter: { reason, route, ... }'),
        })
        .superRefine((c, ctx) => {
          if ((c.payload === undefined) === (c.payloadBase64 === undefined))
            ctx.addIssue({ code: 'custom', message: 'give payload or payloadBase64 (one of them)' });
          const outcome = c.expect.outcome;
          if (outcome !== undefined && !outcomes.includes(outcome as never))
            ctx.addIssue({ code: 'custom', path: ['expect', 'outcome'], message: `one of ${outcomes.join(', ')}` });
        }),
    )
    .min(1),
});

export interface CaseResult {
  readonly name: string;
  readonly where: string;
  readonly problems: readonly string[];
}

/** Runs every case of the file against the rules; a case passes when it has no problem. */
export function runCases(rules: RuleSet, file: string): CaseResult[] {
  const loaded = loadYamlFile(file, casesFile);
  return loaded.value.cases.map((c, i) => {
    const where = loaded.error(['cases', i], '').message.replace(/: cases\[\d+\]: $/, '');
    const problems: string[] = [];
    for (const b of c.births) {
      const refused = routeBirth(rules, b.topic, base64Of(b.payloadBase64, `birth ${b.topic}`));
      if (refused) problems.push(`birth ${b.topic} was not taken: ${refused}`);
    }
    const receivedAt = Date.parse(c.receivedAt);
    if (Number.isNaN(receivedAt)) problems.push(`receivedAt "${c.receivedAt}" is not an ISO 8601 time`);
    const message: Message = {
      topic: c.topic,
      payload: c.payload !== undefined ? Buffer.from(c.payload) : base64Of(c.payloadBase64 as string, 'payloadBase64'),
      qos: c.qos,
      retain: c.retain,
      properties: c.properties ? { userProperties: c.properties } : {},
      receivedAt,
    };
    problems.push(...compare(c.expect, evaluate(rules, message)));
    return { name: c.name, where, problems };
  });
}

/** Each difference between what a case expects and what the rules did, as "where: expected X, got Y". */
function compare(expect: Record<string, unknown>, report: Report): string[] {
  const problems: string[] = [];
  const json = (v: unknown) => JSON.stringify(v, (_k, x: unknown) => (Buffer.isBuffer(x) ? x.toString('base64') : x));
  if (expect.outcome !== undefined && expect.outcome !== report.outcome) problems.push(`outcome: expected ${expect.outcome}, got ${report.outcome}`);
  if (report.warning) problems.push(`warning: ${report.warning}`);
  const sinks = new Set([...report.outputs.map((o) => o.sink), ...Object.keys(expect).filter((k) => k !== 'outcome' && k !== 'deadLetter')]);
  for (const sink of sinks) {
    const got = report.outputs.filter((o) => o.sink === sink).map((o) => itemOf(o.item));
    const want = expect[sink] === undefined ? [] : Array.isArray(expect[sink]) ? expect[sink] : [expect[sink]];
    if (got.length !== want.length) {
      problems.push(`${sink}: expected ${want.length} item(s), got ${got.length}${got.length ? `: ${got.map(json).join(' | ').slice(0, 600)}` : ''}`);
      continue;
    }
    for (const [i, w] of want.entries()) problems.push(...differences(w, got[i], `${sink}[${i}]`));
  }
  const letter = report.deadLetters[0];
  if (expect.deadLetter === undefined) {
    if (letter) problems.push(`deadLetter: expected none, got ${json(letter)}`);
  } else if (!letter) {
    problems.push(`deadLetter: expected ${json(expect.deadLetter)}, got none`);
  } else {
    problems.push(...differences(expect.deadLetter, { ...letter, errors: report.deadLetters.map((d) => d.error) }, 'deadLetter'));
  }
  return problems;
}

/** A file line compares as the object it is. */
function itemOf(item: unknown): unknown {
  if (typeof item === 'string' && item.startsWith('{')) {
    try {
      return JSON.parse(item) as unknown;
    } catch {
      return item;
    }
  }
  return item;
}

/** Where `actual` differs from `expected`: objects compared on the expected keys only, "/re/" strings as patterns. */
export function differences(expected: unknown, actual: unknown, at: string): string[] {
  const show = (v: unknown) => (v === undefined ? 'nothing' : JSON.stringify(v).slice(0, 300));
  if (typeof expected === 'string' && expected.length > 1 && expected.startsWith('/') && expected.endsWith('/')) {
    const text = typeof actual === 'string' ? actual : JSON.stringify(actual);
    return new RegExp(expected.slice(1, -1)).test(text ?? '') ? [] : [`${at}: expected to match ${expected}, got ${show(actual)}`];
  }
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual) || actual.length !== expected.length) return [`${at}: expected ${show(expected)}, got ${show(actual)}`];
    return expected.flatMap((e, i) => differences(e, actual[i], `${at}[${i}]`));
  }
  if (expected !== null && typeof expected === 'object') {
    if (actual === null || typeof actual !== 'object' || Array.isArray(actual)) return [`${at}: expected ${show(expected)}, got ${show(actual)}`];
    return Object.entries(expected).flatMap(([k, v]) => differences(v, (actual as Record<string, unknown>)[k], `${at}.${k}`));
  }
  return isDeepStrictEqual(expected, actual) ? [] : [`${at}: expected ${show(expected)}, got ${show(actual)}`];
}
