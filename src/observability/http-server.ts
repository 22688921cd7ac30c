// /metrics (Prometheus; `?name=NAME` repeated renders only those metrics, for a cheap poll), /healthz (the process serves and its event loop has not stalled past
// the limit lately: liveness.ts), /readyz (connected to the broker and
// every sink's last write succeeded): for Kubernetes probes and load balancers.
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

export interface Readiness {
  /** Problems that make the worker not ready; empty when ready. */
  problems(): string[];
}

export interface Health {
  /** Why the process is not live (a recent event-loop stall); undefined when live. */
  problem(): string | undefined;
}

// node:http by process.getBuiltinModule, not an ES import: on Node 24 an ES import of node:http
// reads every export, among them its lazy WebSocket, CloseEvent and MessageEvent getters, which
// load Node's bundled undici and http2 into a worker that never uses them (~12 MiB RSS, 2.5 MiB of
// live heap; the InfluxDB client is loaded as CommonJS for the same reason: influx-client.ts).
const { createServer } = process.getBuiltinModule('node:http');

export async function startHttpServer(host: string, port: number, registry: Registry, readiness: Readiness, health?: Health): Promise<Server> {
  const server = createServer((req, res) => {
    const [path, query] = (req.url ?? '/').split('?', 2);
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405).end();
      return;
    }
    if (path === '/metrics') {
      const names = query ? new URLSearchParams(query).getAll('name') : [];
      const text = names.length === 0 ? registry.metrics() : metricsNamed(registry, names);
      text.then(
        (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
        (err: Error) => res.writeHead(500).end(err.message),
      );
    } else if (path === '/healthz') {
      const problem = health?.problem();
      res.writeHead(problem ? 503 : 200, { 'content-type': 'text/plain' }).end(problem ? `${problem}\n` : 'ok\n');
    } else if (path === '/readyz') {
      const problems = readiness.problems();
      res.writeHead(problems.length === 0 ? 200 : 503, { 'content-type': 'text/plain' }).end(problems.length === 0 ? 'ready\n' : `${problems.join('\n')}\n`);
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics, /healthz, /readyz\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return server;
}

/** Only the named metrics (unknown names are left out): a poller pays for what it reads. */
async function metricsNamed(registry: Registry, names: readonly string[]): Promise<string> {
  const parts = await Promise.all(names.filter((n) => registry.getSingleMetric(n)).map((n) => registry.getSingleMetricAsString(n)));
  return parts.length === 0 ? '' : `${parts.join('\n')}\n`;
}

export function addressOf(server: Server): string {
  const a = server.address() as AddressInfo;
  return `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
}
