// The worker's HTTP endpoints (/healthz, /readyz, /metrics), up before anything connects so that
// /healthz answers while the sinks are waited for. A port in use is one line naming the key.
import type { Logger } from 'pino';
import type { LoadedConfig } from '../config/load.ts';
import { ConfigError } from '../config/yaml-file.ts';
import { addressOf, startHttpServer } from '../observability/http-server.ts';
import { Liveness } from '../observability/liveness.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { WorkerHealth } from './health.ts';

export interface WorkerHttp {
  readonly url: string;
  close(): Promise<void>;
}

export async function startWorkerHttp(config: LoadedConfig, metrics: Metrics, health: WorkerHealth, log: Logger): Promise<WorkerHttp> {
  const h = config.service.http;
  const liveness = new Liveness(h.liveness, metrics.eventLoopWorstLag, (ms) =>
    log.warn({ stalledMs: ms, limitMs: h.liveness.maxStallMs }, 'the event loop stalled: /healthz fails for a while'),
  );
  const server = await startHttpServer(h.host, h.port, metrics.registry, { problems: () => health.problems() }, liveness).catch((err: unknown) => {
    liveness.stop();
    if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') {
      throw new ConfigError(
        `${config.configFile}: http.port ${h.port} on ${h.host} is in use (another sluice?): stop it, or set http.port (0 picks a free port)`,
      );
    }
    throw err;
  });
  const url = addressOf(server);
  log.info({ http: url }, 'serving /healthz, /readyz and /metrics');
  return {
    url,
    async close() {
      liveness.stop();
      await new Promise((r) => server.close(r));
    },
  };
}
