// helm for the chart's checks (deploy/helm/sluice): built once per machine with `go install`
// from the Go module proxy into the cache, as the stack builds influxd.
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PrerequisiteError, requireExecutable, runCommand } from './prerequisites.ts';

export const helmVersion = 'v3.22.0';

/** The helm binary in the cache, built the first time (a few minutes). */
export async function ensureHelm(cacheDir: string): Promise<string> {
  const outDir = join(cacheDir, `helm-${helmVersion}`);
  const binary = join(outDir, 'helm');
  if (existsSync(binary)) return binary;
  const go = requireExecutable('go', 'helm is built from the Go module proxy: install Go (https://go.dev/doc/install)');
  const tmp = `${outDir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  process.stderr.write(`helm: building helm ${helmVersion} with go install (once per machine, a few minutes)\n`);
  const out = await runCommand(go, ['install', `helm.sh/helm/v3/cmd/helm@${helmVersion}`], {
    ...process.env,
    CGO_ENABLED: '0',
    GOBIN: tmp,
    GOFLAGS: '-mod=mod',
  });
  writeFileSync(`${outDir}.build.log`, out.output);
  if (out.status !== 0 || !existsSync(join(tmp, 'helm'))) {
    rmSync(tmp, { recursive: true, force: true });
    throw new PrerequisiteError(
      `go install helm@${helmVersion} failed (is the Go module proxy reachable?), log ${outDir}.build.log:\n${out.output.trim().split('\n').slice(-10).join('\n')}`,
    );
  }
  rmSync(outDir, { recursive: true, force: true });
  renameSync(tmp, outDir);
  return binary;
}
