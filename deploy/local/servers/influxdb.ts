// InfluxDB OSS 1.8.10, built from the Go module proxy once per machine (CGO off, so no C or
// Rust toolchain), serving the v2 write API on loopback. Debian's influxdb 1.6 lacks that API.
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PrerequisiteError, requireExecutable, runCommand } from '../prerequisites.ts';
import type { StackConfig } from '../stack-config.ts';
import { renderTemplate } from '../template.ts';
import type { LocalServer } from './local-server.ts';

export const influxdbVersion = 'v1.8.10';

export function influxdbServer(config: StackConfig): LocalServer {
  const dir = join(config.runDir, 'influxdb');
  const confFile = join(dir, 'influxdb.conf');
  const binary = join(config.cacheDir, `influxdb-${influxdbVersion}`, 'influxd');
  const base = `http://${config.host}:${config.influxdb.port}`;

  return {
    name: 'influxdb',
    files: { pidFile: join(dir, 'influxdb.pid'), logFile: join(dir, 'influxdb.log'), marker: 'influxd' },
    ports: [
      { port: config.influxdb.port, variable: 'SLUICE_INFLUX_PORT' },
      { port: config.influxdb.rpcPort, variable: 'SLUICE_INFLUX_RPC_PORT' },
    ],
    startTimeoutMs: 30_000,
    debianPackages: [],

    async prepare() {
      if (!existsSync(binary)) await buildInfluxd(binary, join(config.runDir, 'influxdb-build.log'));
      renderTemplate(join(config.repoRoot, 'deploy/local/influxdb/influxdb.conf.template'), confFile, {
        host: config.host,
        port: config.influxdb.port,
        rpcPort: config.influxdb.rpcPort,
        dataDir: join(dir, 'data'),
      });
    },

    launchSpec() {
      return { command: binary, args: ['-config', confFile], cwd: dir };
    },

    async probe() {
      const res = await fetch(`${base}/ping`, { signal: AbortSignal.timeout(2_000) });
      if (res.status !== 204) throw new Error(`GET /ping answered ${res.status}`);
    },

    async afterReady() {
      // The v2 write API needs the database (bucket "sluice/autogen") to exist.
      const res = await fetch(`${base}/query`, {
        method: 'POST',
        body: new URLSearchParams({ q: `CREATE DATABASE "${config.influxdb.database}"` }),
        signal: AbortSignal.timeout(5_000),
      });
      if (!res.ok) throw new Error(`CREATE DATABASE answered ${res.status}: ${await res.text()}`);
    },

    endpoints() {
      return [`${base} (InfluxDB ${influxdbVersion}; /api/v2/write bucket ${config.influxdb.database}/autogen)`];
    },
  };
}

async function buildInfluxd(binary: string, buildLog: string): Promise<void> {
  const go = requireExecutable('go', 'InfluxDB is built from the Go module proxy: install Go (https://go.dev/doc/install)');
  const outDir = join(binary, '..');
  const tmp = `${outDir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  process.stderr.write(`stack: building InfluxDB ${influxdbVersion} with go install (once per machine, a few minutes)\n`);
  const out = await runCommand(go, ['install', `github.com/influxdata/influxdb/cmd/influxd@${influxdbVersion}`], {
    ...process.env,
    CGO_ENABLED: '0',
    GOBIN: tmp,
    GOFLAGS: '-mod=mod',
  });
  mkdirSync(join(buildLog, '..'), { recursive: true });
  writeFileSync(buildLog, out.output);
  if (out.status !== 0 || !existsSync(join(tmp, 'influxd'))) {
    rmSync(tmp, { recursive: true, force: true });
    const why = out.output.trim().split('\n').slice(-10).join('\n');
    throw new PrerequisiteError(`go install influxd@${influxdbVersion} failed (is the Go module proxy reachable?), full log ${buildLog}:\n${why}`);
  }
  rmSync(outDir, { recursive: true, force: true });
  renameSync(tmp, outDir);
}
