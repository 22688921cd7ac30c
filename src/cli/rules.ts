// sluice rules check | test | schema: validate a rules file, show where a message would go
// (the items each sink would write, without writing them), print the JSON schema.
import { loadConfig, loadRules } from '../config/load.ts';
import { jsonText, rulesJsonSchema } from '../config/reference.ts';
import type { Message } from '../message.ts';
import type { RuleSet } from '../router/rule-set.ts';
import { type Command, configFileOf, configHelp, configOptions, type Parsed, rulesOverrideOf, UsageError } from './command.ts';
import { runCases } from './rules-cases.ts';
import { base64Of, evaluate, routeBirth } from './rules-evaluate.ts';

function rulesOf(values: Parsed['values']): RuleSet {
  const override = rulesOverrideOf(values);
  // the secrets' shape is checked, their values not read: a production config is checked where its secrets are not
  return override !== undefined && values.config === undefined
    ? loadRules(override)
    : loadConfig(configFileOf(values), { rulesFile: override, resolveSecrets: false }).rules;
}

export const rulesCheckCommand: Command = {
  name: 'rules check',
  args: '[RULES_FILE]',
  summary: "validate a rules file: the one named, else the config's (exit 1 with file:line on error)",
  options: { ...configOptions, strict: { type: 'boolean' } },
  help: { ...configHelp, strict: 'exit 1 on a warning too (a route no subscription covers, a route an earlier one shadows)' },
  async run({ values, positionals }) {
    if (positionals.length > 1) throw new UsageError(`rules check takes one rules file, got ${positionals.length}: ${positionals.join(' ')}`);
    const [file] = positionals;
    if (file !== undefined && values.rules !== undefined) throw new UsageError('name the rules file as the argument or with --rules, not both');
    const rules = rulesOf(file === undefined ? values : { ...values, rules: file });
    const warnings = ruleWarnings(rules);
    for (const w of warnings) process.stderr.write(`warning: ${w}\n`);
    process.stdout.write(
      `ok: ${rules.routeNames.length} route(s) (${rules.routeNames.join(', ')}), ${rules.subscriptions.length} subscription(s)${warnings.length ? `, ${warnings.length} warning(s)` : ''}\n`,
    );
    return warnings.length > 0 && values.strict ? 1 : 0;
  },
};

/** What a rules file allows but its author surely did not mean: routes that can never receive a message. */
export function ruleWarnings(rules: RuleSet): string[] {
  return [
    ...rules
      .uncoveredRoutes()
      .map(
        (r) =>
          `route "${r.route}" (match ${r.match}) is covered by no subscription: it never receives a message (subscriptions: ${rules.subscriptions.map((s) => s.filter).join(', ')})`,
      ),
    ...rules
      .shadowedRoutes()
      .map(
        (r) =>
          `route "${r.route}" (match ${r.match}) is shadowed by route "${r.by}" before it, which takes every topic it matches (continue: false): it never receives a message`,
      ),
  ];
}

export const rulesTestCommand: Command = {
  name: 'rules test',
  args: 'TOPIC PAYLOAD | --cases FILE',
  summary: 'show where a message would go, and what each sink would write, without sending it',
  notes:
    'outcome: routed, dead-lettered, unmatched-dead-lettered, unmatched-dropped or expired; a warning when no subscription covers the topic.\n' +
    '--cases FILE: every case of a test file (docs/rules.md, Testing rules), a diff for each that fails.\n' +
    'exit codes: 0 routed (written, no dead letter) or every case passed, 1 anything else (dead-lettered, dropped, never received, a case failed), 2 usage',
  options: {
    ...configOptions,
    cases: { type: 'string' },
    qos: { type: 'string' },
    property: { type: 'string', multiple: true },
    base64: { type: 'boolean' },
    birth: { type: 'string', multiple: true },
  },
  help: {
    ...configHelp,
    cases: 'a test file of messages and the outputs they must give',
    qos: 'the QoS it arrives with (default 1)',
    property: 'a user property, K=V',
    base64: 'PAYLOAD is base64 (a Sparkplug B payload, any binary)',
    birth: 'TOPIC=BASE64: a Sparkplug birth routed first, so alias-only data can be named (repeatable)',
  },
  async run({ values, positionals }) {
    const cases = values.cases as string | undefined;
    if (cases !== undefined) {
      if (positionals.length > 0) throw new UsageError('rules test --cases FILE takes no TOPIC or PAYLOAD (the cases name them)');
      return runCaseFile(rulesOf(values), cases);
    }
    const [topic, payload] = positionals;
    if (topic === undefined || payload === undefined) throw new UsageError('rules test needs TOPIC and PAYLOAD, or --cases FILE');
    const bytes = values.base64 ? base64Of(payload, 'PAYLOAD') : Buffer.from(payload);
    const userProperties: Record<string, string> = {};
    for (const p of (values.property as string[] | undefined) ?? []) {
      const eq = p.indexOf('=');
      if (eq < 1) throw new UsageError(`--property takes K=V, got "${p}"`);
      userProperties[p.slice(0, eq)] = p.slice(eq + 1);
    }
    const qos = values.qos === undefined ? 1 : Number(values.qos);
    if (qos !== 0 && qos !== 1 && qos !== 2) throw new UsageError(`--qos takes 0, 1 or 2, got "${String(values.qos)}"`);
    const rules = rulesOf(values);
    for (const b of (values.birth as string[] | undefined) ?? []) {
      const eq = b.indexOf('=');
      if (eq < 1) throw new UsageError(`--birth takes TOPIC=BASE64, got "${b.slice(0, 80)}"`);
      const problem = routeBirth(rules, b.slice(0, eq), base64Of(b.slice(eq + 1), `--birth ${b.slice(0, eq)}`));
      if (problem) throw new UsageError(`--birth ${b.slice(0, eq)}: ${problem}`);
    }
    const message: Message = {
      topic,
      payload: bytes,
      qos,
      retain: false,
      properties: Object.keys(userProperties).length ? { userProperties } : {},
      receivedAt: Date.now(),
    };
    const report = evaluate(rules, message);
    process.stdout.write(`${JSON.stringify(report, (_k, v: unknown) => (Buffer.isBuffer(v) ? v.toString('base64') : v), 2)}\n`);
    // a script can ask "would this message be written?": only a clean route answers yes
    return report.outcome === 'routed' && report.warning === undefined ? 0 : 1;
  },
};

function runCaseFile(rules: RuleSet, file: string): number {
  const results = runCases(rules, file);
  for (const r of results) {
    process.stdout.write(`${r.problems.length ? 'FAIL' : 'ok  '}  ${r.name}  (${r.where})\n`);
    for (const p of r.problems) process.stdout.write(`        ${p}\n`);
  }
  const failed = results.filter((r) => r.problems.length > 0).length;
  process.stdout.write(`${results.length} case(s): ${results.length - failed} passed, ${failed} failed\n`);
  return failed > 0 ? 1 : 0;
}

export const rulesSchemaCommand: Command = {
  name: 'rules schema',
  summary: 'the JSON schema of the rules file (for editors)',
  options: {},
  help: {},
  async run() {
    process.stdout.write(jsonText(rulesJsonSchema()));
    return 0;
  },
};
