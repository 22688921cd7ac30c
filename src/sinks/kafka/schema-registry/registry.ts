// The Confluent-compatible schema registry API (Confluent, Apicurio's /apis/ccompat/v7,
// Karapace, Redpanda): a route's value schema registered under its subject (or, with register:
// false, only looked up), once per worker, its id cached on the schema. A registry that cannot
// be reached is retried like a sink that is down (nothing is acked meanwhile); a registry that
// answers no (an incompatible or invalid schema) refuses those records for good.
import type { ValueEncoder } from './value-encoder.ts';

export interface SchemaRegistryOptions {
  /** Base URL of the Confluent-compatible API, e.g. http://127.0.0.1:28081/apis/ccompat/v7. */
  readonly url: string;
  readonly username?: string | undefined;
  readonly password?: string | undefined;
  readonly timeoutMs: number;
  /** true: register the schema (a new version when it changed); false: it must be registered already. */
  readonly register: boolean;
}

export type Registration = { readonly ok: true } | { readonly ok: false; readonly permanent: boolean; readonly error: string };

export class SchemaRegistryClient {
  private readonly options: SchemaRegistryOptions;
  private readonly headers: Record<string, string>;
  private readonly pending = new Map<ValueEncoder, Promise<Registration>>();

  constructor(options: SchemaRegistryOptions) {
    this.options = options;
    this.headers = { 'content-type': 'application/vnd.schemaregistry.v1+json', accept: 'application/vnd.schemaregistry.v1+json, application/json' };
    if (options.username !== undefined) {
      this.headers.authorization = `Basic ${Buffer.from(`${options.username}:${options.password ?? ''}`).toString('base64')}`;
    }
  }

  /** Gives the schema its header (id), asking the registry the first time; concurrent callers share the answer. */
  ensure(schema: ValueEncoder): Promise<Registration> {
    if (schema.header) return Promise.resolve({ ok: true });
    let p = this.pending.get(schema);
    if (!p) {
      p = this.ask(schema).finally(() => this.pending.delete(schema));
      this.pending.set(schema, p);
    }
    return p;
  }

  private async ask(schema: ValueEncoder): Promise<Registration> {
    const subject = encodeURIComponent(schema.subject);
    // POST /subjects/{s}/versions registers (or finds the same schema); POST /subjects/{s} only looks it up
    const path = this.options.register ? `/subjects/${subject}/versions` : `/subjects/${subject}`;
    const body = JSON.stringify({ schema: schema.text, ...(schema.schemaType === 'AVRO' ? {} : { schemaType: schema.schemaType }) });
    let res: Response;
    try {
      res = await fetch(`${this.options.url.replace(/\/$/, '')}${path}`, {
        method: 'POST',
        headers: this.headers,
        body,
        signal: AbortSignal.timeout(this.options.timeoutMs),
      });
    } catch (err) {
      return { ok: false, permanent: false, error: `schema registry ${this.options.url}: ${(err as Error).message}` };
    }
    const text = await res.text().catch(() => '');
    if (res.ok) {
      const id = (JSON.parse(text) as { id?: unknown }).id;
      if (typeof id !== 'number' || !Number.isInteger(id))
        return { ok: false, permanent: false, error: `schema registry ${this.options.url}: no id in ${text.slice(0, 200)}` };
      schema.registered(id);
      return { ok: true };
    }
    const said = `schema registry ${this.options.url} answered ${res.status} for subject ${schema.subject}: ${text.slice(0, 300)}`;
    // 404 (not registered, with register: false), 409 (incompatible), 422 (invalid): the schema's fault
    return { ok: false, permanent: res.status === 404 || res.status === 409 || res.status === 422, error: said };
  }
}
