// sluice run: one worker until SIGTERM/SIGINT (drain, ack, exit 0; 1 when acks were left
// unsettled at the deadline). A second signal exits at once; a fatal sink exits 70. SIGHUP (and
// with --watch, a change of the file) reloads the rules: validated first, a bad file keeps the
// old rules.
import { watch } from 'node:fs';
import { basename, dirname } from 'node:path';
import { startWorker, type Worker } from '../app.ts';
import { loadConfig, loadRules } from '../config/load.ts';
import { ConfigError } from '../config/yaml-file.ts';
import { createLogger } from '../observability/logger.ts';
import { type Command, configFileOf, configHelp, configOptions, rulesOverrideOf } from './command.ts';

export const runCommand: Command = {
  name: 'run',
  summary: 'run a worker (SIGTERM/SIGINT: stop reading, drain, ack, exit; SIGHUP: reload the rules)',
  options: { ...configOptions, watch: { type: 'boolean' } },
  help: { ...configHelp, watch: 'reload the rules file when it changes (as on SIGHUP)' },
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
    // SIGHUP's default is to terminate: handled from the start, a reload once the worker runs
    let onHangup = () => log.warn('SIGHUP while starting: ignored (the rules just loaded are in use)');
    process.on('SIGHUP', () => onHangup());
    try {
      worker = await startWorker(config, log, {
        signal: aborted.signal,
        // a failed audit (or file) write or fsync: stop at once, ack nothing more (never retried: the page cache may have dropped the data)
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
    const running = worker;
    running.metrics.rulesLastReloadSuccess.set(Date.now() / 1000);
    const reload = (why: string) => {
      if (stopping) return;
      try {
        const { added, removed } = running.reload(loadRules(config.rulesFile));
        running.metrics.rulesReloads.inc();
        running.metrics.rulesLastReloadSuccess.set(Date.now() / 1000);
        log.info({ why, file: config.rulesFile, added, removed }, 'rules reloaded');
      } catch (err) {
        running.metrics.rulesReloadFailures.inc();
        const message = err instanceof ConfigError ? err.message : `${config.rulesFile}: ${(err as Error).message}`;
        log.error({ why, err: message }, 'rules reload refused: the old rules stay');
      }
    };
    onHangup = () => reload('SIGHUP');
    if (values.watch) {
      // the directory, not the file: editors save by renaming a new file over the old one
      let timer: NodeJS.Timeout | undefined;
      const watcher = watch(dirname(config.rulesFile), (_event, name) => {
        if (name !== basename(config.rulesFile)) return;
        clearTimeout(timer);
        timer = setTimeout(() => reload('file changed'), 200);
      });
      watcher.unref();
    }
    const code = await done.promise;
    log.flush();
    return code;
  },
};
