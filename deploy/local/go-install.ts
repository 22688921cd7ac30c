// A Go tool built once per machine with `go install` from the Go module proxy into the cache
// (helm for the chart's checks, Toxiproxy for the network-fault tests), as the stack builds influxd.
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PrerequisiteError, requireExecutable, runCommand } from './prerequisites.ts';

/** `<cacheDir>/<name>-<version>/<binary>`, built the first time from `module@version`. */
export async function goInstalled(cacheDir: string, name: string, version: string, module: string, binary: string): Promise<string> {
  const outDir = join(cacheDir, `${name}-${version}`);
  const path = join(outDir, binary);
  if (existsSync(path)) return path;
  const go = requireExecutable('go', `${name} is built from the Go module proxy: install Go (https://go.dev/doc/install)`);
  const tmp = `${outDir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  process.stderr.write(`${name}: building ${name} ${version} with go install (once per machine)\n`);
  const out = await runCommand(go, ['install', `${module}@${version}`], { ...process.env, CGO_ENABLED: '0', GOBIN: tmp, GOFLAGS: '-mod=mod' });
  writeFileSync(`${outDir}.build.log`, out.output);
  if (out.status !== 0 || !existsSync(join(tmp, binary))) {
    rmSync(tmp, { recursive: true, force: true });
    throw new PrerequisiteError(
      `go install ${module}@${version} failed (is the Go module proxy reachable?), log ${outDir}.build.log:\n${out.output.trim().split('\n').slice(-10).join('\n')}`,
    );
  }
  rmSync(outDir, { recursive: true, force: true });
  renameSync(tmp, outDir);
  return path;
}
