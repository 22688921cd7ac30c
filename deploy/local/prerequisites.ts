// What the local stack needs from the machine, checked before anything starts. A missing tool
// is one clear line naming it and the fix; Debian packages are installed on the spot when we
// are root with apt (a fresh CI machine), never silently elsewhere.
import { spawn, spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, readdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { delimiter, join } from 'node:path';

export class PrerequisiteError extends Error {
  override readonly name = 'PrerequisiteError';
}

const extraDirs = ['/usr/sbin', '/usr/local/sbin', '/sbin'];

/** Absolute path of an executable on PATH (or the sbin dirs, where Debian puts mosquitto). */
export function findExecutable(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), ...extraDirs];
  for (const dir of dirs) {
    if (!dir) continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

export function requireExecutable(name: string, fix: string): string {
  const found = findExecutable(name);
  if (!found) throw new PrerequisiteError(`${name} not found: ${fix}`);
  return found;
}

/** Debian packages for the executables, installed with apt-get when we may; else an error saying how. */
export function ensureDebianPackages(wanted: ReadonlyArray<{ executable: string; pkg: string }>): void {
  const missing = wanted.filter((w) => !findExecutable(w.executable));
  if (missing.length === 0) return;
  const pkgs = [...new Set(missing.map((m) => m.pkg))];
  const names = missing.map((m) => m.executable).join(', ');
  const canInstall = process.getuid?.() === 0 && findExecutable('apt-get') !== undefined && process.env.SLUICE_NO_INSTALL !== '1';
  if (!canInstall) {
    throw new PrerequisiteError(`${names} not found: install the Debian package(s) with \`sudo apt-get install ${pkgs.join(' ')}\``);
  }
  process.stderr.write(`stack: installing ${pkgs.join(' ')} with apt-get (missing: ${names})\n`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = () => spawnSync('apt-get', ['install', '-y', '-q', '--no-install-recommends', ...pkgs], { env, encoding: 'utf8' });
  let result = install();
  if (result.status !== 0) {
    // a fresh machine has no package lists yet
    spawnSync('apt-get', ['update', '-q'], { env, encoding: 'utf8' });
    result = install();
  }
  if (result.status !== 0) {
    const why = (result.stderr || result.stdout || '').trim().split('\n').slice(-3).join(' / ');
    throw new PrerequisiteError(`apt-get install ${pkgs.join(' ')} failed: ${why}`);
  }
  const still = missing.filter((m) => !findExecutable(m.executable));
  if (still.length > 0) {
    throw new PrerequisiteError(`${still.map((m) => m.executable).join(', ')} still missing after apt-get install`);
  }
}

/** Java's major version (17 for "17.0.15"), or an error naming what to install. */
export function requireJava(minMajor: number, who = 'Kafka'): string {
  const java = requireExecutable('java', `${who} needs Java ${minMajor}+: \`apt-get install openjdk-${minMajor}-jre-headless\``);
  const { major, version } = javaVersion(java);
  if (!(major >= minMajor)) {
    throw new PrerequisiteError(`${who} needs Java ${minMajor}+, found ${version ?? 'an unknown java'} at ${java}`);
  }
  return java;
}

/** What `java -version` says: the major version (17 for "17.0.15", 8 for "1.8.0"), NaN if it says nothing usable. */
function javaVersion(java: string): { major: number; version: string | undefined } {
  const out = spawnSync(java, ['-version'], { encoding: 'utf8' });
  const match = /version "(\d+)(?:\.(\d+))?/.exec(`${out.stderr}${out.stdout}`);
  return { major: match ? Number(match[1] === '1' ? match[2] : match[1]) : NaN, version: match?.[0] };
}

/**
 * A java of at least `minMajor`: the one on PATH, JAVA_HOME's, or one under /usr/lib/jvm
 * (machines with Java 17 as default often carry a newer one there).
 */
export function findJava(minMajor: number, who: string): string {
  const candidates = [findExecutable('java'), process.env.JAVA_HOME && join(process.env.JAVA_HOME, 'bin', 'java'), ...jvmJavas()];
  const seen: string[] = [];
  for (const java of candidates) {
    if (!java || !existsSync(java) || seen.includes(java)) continue;
    seen.push(java);
    if (javaVersion(java).major >= minMajor) return java;
  }
  throw new PrerequisiteError(
    `${who} needs Java ${minMajor}+; found none (looked at ${seen.join(', ') || 'PATH, JAVA_HOME, /usr/lib/jvm'}): install openjdk-${minMajor}-jre-headless or a Temurin ${minMajor}+, or set JAVA_HOME`,
  );
}

function jvmJavas(): string[] {
  try {
    return readdirSync('/usr/lib/jvm')
      .sort()
      .reverse()
      .map((d) => join('/usr/lib/jvm', d, 'bin', 'java'));
  } catch {
    return [];
  }
}

/** Fails with the variable to change when another process holds the port. */
export async function assertPortFree(host: string, port: number, who: string, variable: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const server = createServer();
    server.once('error', (err: NodeJS.ErrnoException) => {
      reject(
        err.code === 'EADDRINUSE'
          ? new PrerequisiteError(`port ${port} (${who}) on ${host} is in use by another process: stop it or set ${variable} to a free port`)
          : err,
      );
    });
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve()));
  });
}

/** Runs a command to completion without blocking the event loop, so slow installs overlap. */
export function runCommand(
  cmd: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
  cwd?: string,
): Promise<{ status: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    const chunks: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => chunks.push(c));
    child.stderr.on('data', (c: Buffer) => chunks.push(c));
    child.on('error', (err) => resolve({ status: null, output: err.message }));
    child.on('close', (status) => resolve({ status, output: Buffer.concat(chunks).toString('utf8') }));
  });
}
