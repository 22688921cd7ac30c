// One spec, three outputs: the zod schemas of the service config and the rules file give the
// validation (yaml-file.ts), the JSON schemas editors use (schemas/, `sluice config schema`,
// `sluice rules schema`) and the generated reference (docs/reference.md). `npm run schemas`
// writes the committed files; test/config/schemas.test.ts fails when they drift from the code.
import { z } from 'zod';
import { rulesFile } from './rules-schema.ts';
import { serviceConfig } from './service-schema.ts';

type JsonSchema = {
  type?: string | string[];
  description?: string;
  default?: unknown;
  enum?: unknown[];
  const?: unknown;
  properties?: Record<string, JsonSchema>;
  items?: JsonSchema;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  additionalProperties?: JsonSchema | boolean;
  [key: string]: unknown;
};

export function serviceJsonSchema(): JsonSchema {
  return z.toJSONSchema(serviceConfig, { io: 'input' }) as JsonSchema;
}

export function rulesJsonSchema(): JsonSchema {
  return z.toJSONSchema(rulesFile, { io: 'input' }) as JsonSchema;
}

/**
 * The Helm chart's values.schema.json: helm lint, template and install check the values with it,
 * so a mistyped key in `config` or `rules` fails before a pod starts (the two files' own schemas,
 * embedded).
 */
export function helmValuesSchema(): JsonSchema {
  const embedded = (schema: JsonSchema) => {
    const { $schema: _, ...rest } = schema;
    return rest;
  };
  const obj = (description: string, properties: Record<string, JsonSchema>) => ({ type: 'object', description, additionalProperties: false, properties });
  const free = (description: string) => ({ type: 'object', description });
  const list = (description: string) => ({ type: 'array', description, items: { type: 'object' } });
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    type: 'object',
    additionalProperties: false,
    properties: {
      replicaCount: { type: 'integer', minimum: 0, description: 'workers (pods), each with its own client id and volume' },
      image: obj('the sluice image', {
        repository: { type: 'string' },
        tag: { type: 'string' },
        pullPolicy: { enum: ['Always', 'IfNotPresent', 'Never'] },
      }),
      config: { ...embedded(serviceJsonSchema()), description: 'the service config, sluice.yaml (docs/configuration.md)' },
      rules: { ...embedded(rulesJsonSchema()), description: 'the routing rules, rules.yaml (docs/rules.md)' },
      secrets: obj('files mounted at /var/run/secrets/sluice/<key>', {
        existingSecret: { type: 'string', description: 'an existing Secret to mount' },
        data: { type: 'object', additionalProperties: { type: 'string' }, description: 'key: value, made into a Secret by the chart' },
      }),
      dataVolume: obj('the persistent volume of each pod, at /var/lib/sluice', {
        size: { type: 'string' },
        storageClassName: { type: 'string' },
      }),
      extraEnv: list('more environment variables (Kubernetes EnvVar)'),
      envFrom: list('more environment from ConfigMaps or Secrets (Kubernetes EnvFromSource)'),
      extraVolumes: list('more volumes (Kubernetes Volume)'),
      extraVolumeMounts: list('where to mount them (Kubernetes VolumeMount)'),
      serviceAccount: obj("the pods' ServiceAccount (no token is mounted)", { create: { type: 'boolean' }, name: { type: 'string' } }),
      resources: free('requests and limits (Kubernetes ResourceRequirements)'),
      heapMiB: { type: 'integer', minimum: 64, description: "V8's old generation, --max-old-space-size (docs/operations.md, Memory)" },
      terminationGracePeriodSeconds: { type: 'integer', minimum: 1, description: 'above config.shutdown.deadlineMs' },
      podDisruptionBudget: obj('a PodDisruptionBudget', { enabled: { type: 'boolean' }, maxUnavailable: { type: ['integer', 'string'] } }),
      serviceMonitor: obj('a Prometheus Operator ServiceMonitor', { enabled: { type: 'boolean' }, interval: { type: 'string' }, labels: { type: 'object' } }),
      podSecurityContext: free("the pod's security context"),
      securityContext: free("the container's security context"),
      nodeSelector: free('Kubernetes nodeSelector'),
      tolerations: list('Kubernetes tolerations'),
      affinity: free('Kubernetes affinity'),
    },
  };
}

export interface ReferenceRow {
  readonly path: string;
  readonly type: string;
  readonly default: string;
  readonly description: string;
}

/** Every property of a schema, depth first: its path, type, default and description. */
export function referenceRows(schema: JsonSchema): ReferenceRow[] {
  const rows: ReferenceRow[] = [];
  const walk = (s: JsonSchema, path: string) => {
    for (const [key, child] of Object.entries(s.properties ?? {})) {
      const at = path ? `${path}.${key}` : key;
      rows.push({
        path: at,
        type: typeOf(child),
        default: child.default === undefined ? '' : JSON.stringify(child.default),
        description: child.description ?? '',
      });
      for (const variant of nested(child)) walk(variant.s, `${at}${variant.suffix}`);
    }
  };
  walk(schema, '');
  return rows;
}

/** Properties without a description: each field must say what it is. */
export function undescribed(schema: JsonSchema): string[] {
  return referenceRows(schema)
    .filter((r) => r.description === '')
    .map((r) => r.path);
}

/** docs/reference.md: one table per file, generated. */
export function referenceMarkdown(): string {
  const table = (rows: ReferenceRow[]) =>
    [
      '| key | type | default | description |',
      '|---|---|---|---|',
      ...rows.map((r) => `| \`${r.path}\` | ${cell(r.type)} | ${r.default ? `\`${cell(r.default)}\`` : ''} | ${cell(r.description)} |`),
    ].join('\n');
  return [
    '# Reference (generated)',
    '',
    '<!-- Generated from the zod schemas by `npm run schemas` (src/config/reference.ts); do not',
    '     edit: test/config/schemas.test.ts fails when this file drifts from the code. -->',
    '',
    'Every key of the service config and the rules file, from the same schemas that validate them',
    'and that make `schemas/sluice.schema.json` and `schemas/rules.schema.json` (for editors: the',
    'examples start with a `# yaml-language-server: $schema=...` line). The prose guides are',
    '[configuration.md](configuration.md) and [rules.md](rules.md). `[]` marks the items of a list,',
    '`.*` the values of a map, `|N` the Nth form of a key that takes several.',
    '',
    '## Service config (`sluice.yaml`)',
    '',
    table(referenceRows(serviceJsonSchema())),
    '',
    '## Rules file (`rules.yaml`)',
    '',
    table(referenceRows(rulesJsonSchema())),
    '',
  ].join('\n');
}

export function jsonText(schema: JsonSchema): string {
  return `${JSON.stringify(schema, null, 2)}\n`;
}

function nested(s: JsonSchema): Array<{ s: JsonSchema; suffix: string }> {
  if (s.properties) return [{ s, suffix: '' }];
  if (s.type === 'array' && s.items) return nested(s.items).map((n) => ({ s: n.s, suffix: `[]${n.suffix}` }));
  if (typeof s.additionalProperties === 'object') return nested(s.additionalProperties).map((n) => ({ s: n.s, suffix: `.*${n.suffix}` }));
  const variants = s.anyOf ?? s.oneOf;
  if (variants) {
    const withProps = variants.filter((v) => nested(v).length > 0);
    return withProps.flatMap((v) => nested(v).map((n) => ({ s: n.s, suffix: withProps.length > 1 ? `|${variants.indexOf(v) + 1}${n.suffix}` : n.suffix })));
  }
  return [];
}

function typeOf(s: JsonSchema): string {
  if (s.const !== undefined) return JSON.stringify(s.const);
  if (s.enum) return s.enum.map((e) => JSON.stringify(e)).join(' \\| ');
  const variants = s.anyOf ?? s.oneOf;
  if (variants) return [...new Set(variants.map(typeOf))].join(' or ');
  if (s.type === 'array') return `list of ${s.items ? typeOf(s.items) : 'any'}`;
  if (s.type === 'object' && !s.properties && typeof s.additionalProperties === 'object') return `map of ${typeOf(s.additionalProperties)}`;
  return Array.isArray(s.type) ? s.type.join(' or ') : (s.type ?? 'any');
}

function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/</g, '&lt;').replace(/\n/g, ' ');
}
