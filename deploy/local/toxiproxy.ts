// Toxiproxy (Shopify, MIT) for the network-fault tests: built once per machine with `go install`
// from the Go module proxy, as helm and influxd are, and started by the tests that ask for it
// (not part of the stack a plain run needs). It sits between sluice and a server and, through
// its HTTP API, drops packets without closing (a blackhole), adds latency, limits bandwidth,
// resets connections.
import { type ChildProcess, spawn } from 'node:child_process';
import { goInstalled } from './go-install.ts';

export const toxiproxyVersion = 'v2.12.0';

/** The toxiproxy server in the cache, built the first time (~15 s). */
export async function ensureToxiproxy(cacheDir: string): Promise<string> {
  return goInstalled(cacheDir, 'toxiproxy', toxiproxyVersion, 'github.com/Shopify/toxiproxy/v2/cmd/server', 'server');
}

export interface Toxic {
  readonly type: 'timeout' | 'latency' | 'bandwidth' | 'reset_peer' | 'slow_close' | 'limit_data';
  readonly stream: 'upstream' | 'downstream';
  readonly attributes: Record<string, number>;
}

/** A running toxiproxy server on loopback and its API. */
export class Toxiproxy {
  private readonly child: ChildProcess;
  readonly api: string;

  private constructor(child: ChildProcess, api: string) {
    this.child = child;
    this.api = api;
  }

  static async start(binary: string, host: string, port: number): Promise<Toxiproxy> {
    const child = spawn(binary, ['-host', host, '-port', String(port)], { stdio: ['ignore', 'ignore', 'pipe'] });
    const t = new Toxiproxy(child, `http://${host}:${port}`);
    for (let i = 0; i < 100; i++) {
      if (child.exitCode !== null) throw new Error(`toxiproxy exited (${child.exitCode})`);
      if ((await fetch(`${t.api}/version`).catch(() => undefined))?.ok) return t;
      await new Promise((r) => setTimeout(r, 100));
    }
    child.kill('SIGKILL');
    throw new Error('toxiproxy did not answer within 10 s');
  }

  /** A proxy listening on `listen` (host:port) in front of `upstream`. */
  async proxy(name: string, listen: string, upstream: string): Promise<void> {
    await this.call('POST', '/proxies', { name, listen, upstream, enabled: true });
  }

  /** Adds a toxic to every connection of the proxy, in one direction. */
  async add(proxy: string, name: string, toxic: Toxic): Promise<void> {
    await this.call('POST', `/proxies/${proxy}/toxics`, { name, type: toxic.type, stream: toxic.stream, toxicity: 1, attributes: toxic.attributes });
  }

  async remove(proxy: string, name: string): Promise<void> {
    await this.call('DELETE', `/proxies/${proxy}/toxics/${name}`);
  }

  /** A blackhole: data in both directions dropped, nothing closed (a firewall that drops packets). */
  async blackhole(proxy: string): Promise<void> {
    await this.add(proxy, 'blackhole-up', { type: 'timeout', stream: 'upstream', attributes: { timeout: 0 } });
    await this.add(proxy, 'blackhole-down', { type: 'timeout', stream: 'downstream', attributes: { timeout: 0 } });
  }

  async heal(proxy: string): Promise<void> {
    await this.remove(proxy, 'blackhole-up');
    await this.remove(proxy, 'blackhole-down');
  }

  stop(): void {
    this.child.kill('SIGKILL');
  }

  private async call(method: string, path: string, body?: unknown): Promise<void> {
    const res = await fetch(`${this.api}${path}`, {
      method,
      ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
    });
    if (!res.ok) throw new Error(`toxiproxy ${method} ${path}: ${res.status} ${await res.text()}`);
  }
}
