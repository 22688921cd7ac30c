// /metrics renders the whole registry, or only the metrics named in ?name= (the benchmark's cheap poll).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Counter, Registry } from 'prom-client';
import { addressOf, startHttpServer } from '../../src/observability/http-server.ts';

test('/metrics?name=A&name=B renders only A and B; an unknown name is left out; no name: everything', async (t) => {
  const registry = new Registry();
  for (const name of ['a_total', 'b_total', 'c_total']) new Counter({ name, help: name, registers: [registry] }).inc();
  const server = await startHttpServer('127.0.0.1', 0, registry, { problems: () => [] });
  t.after(() => server.close());
  const get = async (query: string) => (await fetch(`${addressOf(server)}/metrics${query}`)).text();
  const named = await get('?name=a_total&name=c_total&name=nope_total');
  assert.match(named, /^a_total 1$/m);
  assert.match(named, /^c_total 1$/m);
  assert.doesNotMatch(named, /b_total/);
  assert.match(await get(''), /^b_total 1$/m);
});
