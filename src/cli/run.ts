// sluice run: one worker until SIGTERM/SIGINT (drain, ack, exit 0; 1 when acks were left
// unsettled at the deadline). A second signal exits at once; a fatal sink exits 70.
import { startWorker, type Worker } from '../app.ts';
import { loadConfig } from '../config/load.ts';
import { createLogger } from '../observability/logger.ts';
import { configFileOf, configHelp, configOptions, rulesOverrideOf, type Command } from './command.ts';

export const runCommand: Command = {
  name: 'run',
  summary: 'run a worker (SIGTERM/SIGINT: stop reading, drain, ack, exit)',
  options: configOptions,
  help: configHelp,
  notes: 'exit codes: 0 stopped cleanly, 1 acks left unsettled at the shutdown deadline, 70 a sink failed for good (a failed fsync)',
  async run({ values }) {
    const config = loadConfig(configFileOf(values), { rulesFile: rulesOverrideOf(values) });
    const log = createLogger(process.env.SLUICE_LOG_LEVEL ?? config.service.log.level);
    const aborted = new AbortController();
    let stopping: Promise<number> | undefined;
    let worker: Worker | undefined;
    const done = Promise.withResolvers<number>();
    const onSignal = (signal: NodeJS.Signals) => {
      if (stopping) {
        log.warn({ signal }, 'second signal: exiting now; unacked messages will be redelivered');
        process.exit(130);
      }
      log.info({ signal }, 'signal received');
      aborted.abort();
      stopping = worker ? worker.stop().then((unsettled) => (unsettled > 0 ? 1 : 0)) : Promise.resolve(0);
      stopping.then(done.resolve, done.reject);
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    try {
      worker = await startWorker(config, log, {
        signal: aborted.signal,
        // a failed audit (or file) write or fsync: stop at once, ack nothing more (DESIGN.md: never retried)
        onFatal: () => {
          log.flush();
          process.exit(70);
        },
      });
    } catch (err) {
      if (aborted.signal.aborted) return 0;
      throw err;
    }
    if (aborted.signal.aborted && !stopping) onSignal('SIGTERM');
    const code = await done.promise;
    log.flush();
    return code;
  },
};
