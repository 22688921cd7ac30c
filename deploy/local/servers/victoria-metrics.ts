// VictoriaMetrics from Debian's package: a second TSDB behind the same /api/v2/write line
// protocol API, so sluice is proven to speak the protocol rather than one server's dialect.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { requireExecutable } from '../prerequisites.ts';
import type { StackConfig } from '../stack-config.ts';
import type { LocalServer } from './local-server.ts';

export function victoriaMetricsServer(config: StackConfig): LocalServer {
  const dir = join(config.runDir, 'victoria-metrics');
  const base = `http://${config.host}:${config.victoriaMetrics.port}`;
  return {
    name: 'victoria-metrics',
    files: { pidFile: join(dir, 'victoria-metrics.pid'), logFile: join(dir, 'victoria-metrics.log'), marker: 'victoria-metrics' },
    ports: [{ port: config.victoriaMetrics.port, variable: 'SLUICE_VM_PORT' }],
    startTimeoutMs: 20_000,
    debianPackages: [{ executable: 'victoria-metrics', pkg: 'victoria-metrics' }],

    async prepare() {
      mkdirSync(join(dir, 'data'), { recursive: true });
    },

    launchSpec() {
      return {
        command: requireExecutable('victoria-metrics', '`apt-get install victoria-metrics`'),
        args: [
          `-httpListenAddr=${config.host}:${config.victoriaMetrics.port}`,
          `-storageDataPath=${join(dir, 'data')}`,
          '-retentionPeriod=1d',
          // serve samples as soon as they are written (the default hides the last 30 s)
          '-search.latencyOffset=0s',
        ],
        cwd: dir,
      };
    },

    async probe() {
      const res = await fetch(`${base}/health`, { signal: AbortSignal.timeout(2_000) });
      if (!res.ok) throw new Error(`GET /health answered ${res.status}`);
    },

    endpoints() {
      return [`${base} (VictoriaMetrics; /api/v2/write)`];
    },
  };
}
