// An Artemis primary/backup pair for one test (deploy/local/servers/artemis.ts), on free
// loopback ports in a temporary directory: started, the backup synchronised with the primary,
// and everything killed and removed after the test (logs printed if it failed).
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { LaunchSpec } from '../../deploy/local/daemon.ts';
import { type ArtemisNode, artemisDist, createArtemisPair } from '../../deploy/local/servers/artemis.ts';
import { mqttProbe } from '../../deploy/local/servers/mqtt-probe.ts';
import { freePort } from './broker.ts';
import { config } from './stack.ts';

export class ArtemisPair {
  readonly primary: ArtemisNode;
  readonly backup: ArtemisNode;
  private readonly specs: Record<'primary' | 'backup', LaunchSpec>;
  private readonly children = new Map<'primary' | 'backup', ChildProcess>();

  private constructor(primary: ArtemisNode, backup: ArtemisNode, specs: Record<'primary' | 'backup', LaunchSpec>) {
    this.primary = primary;
    this.backup = backup;
    this.specs = specs;
  }

  static async create(dir: string): Promise<ArtemisPair> {
    const bin = await artemisDist(config.cacheDir);
    const node = async (name: 'primary' | 'backup'): Promise<ArtemisNode> => ({
      name,
      dir: join(dir, name),
      corePort: await freePort(),
      mqttPort: await freePort(),
    });
    const primary = await node('primary');
    const backup = await node('backup');
    return new ArtemisPair(primary, backup, await createArtemisPair(bin, config.host, primary, backup));
  }

  url(node: ArtemisNode): string {
    return `mqtt://${config.host}:${node.mqttPort}`;
  }

  logFile(node: ArtemisNode): string {
    return join(node.dir, 'broker.log');
  }

  log(node: ArtemisNode): string {
    try {
      return readFileSync(this.logFile(node), 'utf8');
    } catch {
      return '';
    }
  }

  /** Starts the primary until it serves MQTT, then the backup until it has copied the primary's journal. */
  async start(timeoutMs = 90_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    this.spawn(this.primary);
    while (
      !(await mqttProbe(config.host, this.primary.mqttPort).then(
        () => true,
        () => false,
      ))
    ) {
      if (Date.now() > deadline) throw new Error(`the Artemis primary did not serve MQTT in ${timeoutMs} ms:\n${this.tail(this.primary)}`);
      await sleep(200);
    }
    this.spawn(this.backup);
    // AMQ221024: "Backup server ... is synchronized with primary server"
    while (!this.log(this.backup).includes('AMQ221024')) {
      if (Date.now() > deadline) throw new Error(`the Artemis backup did not synchronise in ${timeoutMs} ms:\n${this.tail(this.backup)}`);
      await sleep(200);
    }
  }

  /** SIGKILL: no shutdown, no handing over; the backup must notice by itself. Returns when. */
  async kill(node: ArtemisNode): Promise<number> {
    const child = this.children.get(node.name);
    const at = Date.now();
    if (!child || child.exitCode !== null || child.signalCode !== null) return at;
    const gone = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await gone;
    return at;
  }

  /** When the backup said it is active (AMQ221007), waiting up to timeoutMs. */
  async backupActive(timeoutMs = 60_000): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    while (!this.log(this.backup).includes('AMQ221007')) {
      if (Date.now() > deadline) throw new Error(`the Artemis backup did not become active in ${timeoutMs} ms:\n${this.tail(this.backup)}`);
      await sleep(50);
    }
    return Date.now();
  }

  tail(node: ArtemisNode, lines = 40): string {
    return this.log(node).split('\n').slice(-lines).join('\n');
  }

  async stop(): Promise<void> {
    await Promise.all([this.kill(this.primary), this.kill(this.backup)]);
  }

  private spawn(node: ArtemisNode): void {
    const spec = this.specs[node.name];
    const log = this.logFile(node);
    writeFileSync(log, `--- ${new Date().toISOString()} start\n`, { flag: 'a' });
    // its own process group: the artemis script starts java as a child, and the kill must reach it
    const child = spawn('/bin/sh', ['-c', `exec "${spec.command}" ${spec.args.join(' ')}`], {
      cwd: spec.cwd,
      env: spec.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const append = (b: Buffer) => writeFileSync(log, b, { flag: 'a' });
    child.stdout?.on('data', append);
    child.stderr?.on('data', append);
    this.children.set(node.name, child);
  }
}

/** A started pair for one test; killed and removed after it, its logs printed if the test failed. */
export async function artemisPairFor(t: TestContext): Promise<ArtemisPair> {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-artemis-'));
  const pair = await ArtemisPair.create(dir);
  t.after(async () => {
    if (!(t as TestContext & { readonly passed: boolean }).passed) {
      process.stderr.write(`\n--- artemis primary ---\n${pair.tail(pair.primary, 60)}\n--- artemis backup ---\n${pair.tail(pair.backup, 60)}\n`);
    }
    await pair.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  await pair.start();
  return pair;
}
