// helm for the chart's checks (deploy/helm/sluice): built once per machine with `go install`
// from the Go module proxy into the cache.
import { goInstalled } from './go-install.ts';

export const helmVersion = 'v3.22.0';

/** The helm binary in the cache, built the first time (a few minutes). */
export async function ensureHelm(cacheDir: string): Promise<string> {
  return goInstalled(cacheDir, 'helm', helmVersion, 'helm.sh/helm/v3/cmd/helm', 'helm');
}
