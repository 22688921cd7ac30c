// Starts a server as a detached background process with its output in a log file and its pid
// in a pid file, finds it again from another process, waits for readiness with a real probe
// and stops it (SIGTERM, then SIGKILL after a grace period).
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export interface DaemonFiles {
  readonly pidFile: string;
  readonly logFile: string;
  /** A word that must appear in /proc/<pid>/cmdline, so a recycled pid is not mistaken for ours. */
  readonly marker: string;
}

export interface LaunchSpec {
  readonly command: string;
  readonly args: readonly string[];
  readonly cwd: string;
  readonly env?: NodeJS.ProcessEnv;
}

export function runningPid(files: DaemonFiles): number | undefined {
  if (!existsSync(files.pidFile)) return undefined;
  const pid = Number(readFileSync(files.pidFile, 'utf8').trim());
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  try {
    process.kill(pid, 0);
  } catch {
    return undefined;
  }
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    if (!cmdline.includes(files.marker)) return undefined;
  } catch {
    return undefined; // gone between the two checks
  }
  return pid;
}

export function launch(files: DaemonFiles, spec: LaunchSpec): number {
  mkdirSync(dirname(files.logFile), { recursive: true });
  const log = openSync(files.logFile, 'a');
  try {
    writeFileSync(log, `\n--- ${new Date().toISOString()} starting: ${spec.command} ${spec.args.join(' ')}\n`);
    const child = spawn(spec.command, spec.args, {
      cwd: spec.cwd,
      env: spec.env ?? process.env,
      detached: true,
      stdio: ['ignore', log, log],
    });
    if (child.pid === undefined) throw new Error(`could not start ${spec.command}`);
    child.unref();
    writeFileSync(files.pidFile, `${child.pid}\n`);
    return child.pid;
  } finally {
    closeSync(log);
  }
}

/** Stops the process and waits until it is gone. Returns false when nothing was running. */
export async function terminate(files: DaemonFiles, graceMs = 15_000): Promise<boolean> {
  const pid = runningPid(files);
  if (pid === undefined) {
    rmSync(files.pidFile, { force: true });
    return false;
  }
  signal(pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (isAlive(pid)) {
    if (Date.now() > deadline) {
      signal(pid, 'SIGKILL');
      await sleep(200);
      break;
    }
    await sleep(100);
  }
  rmSync(files.pidFile, { force: true });
  return true;
}

/**
 * Polls `probe` until it resolves. Fails early, with the log's tail, if the process exits,
 * and after `timeoutMs` with the last probe error and the log's tail.
 */
export async function waitUntilReady(what: string, files: DaemonFiles, probe: () => Promise<void>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    if (runningPid(files) === undefined) {
      throw new Error(`${what} exited during start-up; last lines of ${files.logFile}:\n${tail(files.logFile)}`);
    }
    try {
      await probe();
      return;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      const reason = lastError instanceof Error ? lastError.message : String(lastError);
      throw new Error(`${what} not ready after ${timeoutMs / 1000}s (${reason}); last lines of ${files.logFile}:\n${tail(files.logFile)}`);
    }
    await sleep(250);
  }
}

export function tail(file: string, lines = 30): string {
  if (!existsSync(file)) return '(no log yet)';
  const text = readFileSync(file, 'utf8');
  return text
    .split('\n')
    .slice(-lines - 1)
    .join('\n');
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}
