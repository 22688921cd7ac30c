// Jars from Maven Central for the stack's Java servers (Kafka, HiveMQ): resolved by Maven once
// per pom content into the cache, then run with `java -cp '<dir>/*'`; and Apicurio Registry's
// distribution, unpacked once.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PrerequisiteError, requireExecutable, runCommand } from './prerequisites.ts';

/** Where the jars of `pom` live in the cache (the name changes with the pom's content). */
export function mavenJarsDir(cacheDir: string, name: string, pom: string): string {
  const digest = createHash('sha256').update(readFileSync(pom)).digest('hex').slice(0, 12);
  return join(cacheDir, `${name}-${digest}`, 'libs');
}

/** The pom's runtime jars in the cache, fetched with `mvn dependency:copy-dependencies` the first time. */
export function mavenJars(cacheDir: string, name: string, pom: string, what: string): Promise<string> {
  return intoCache(mavenJarsDir(cacheDir, name, pom), `${what} jars`, ['-f', pom, 'dependency:copy-dependencies', '-DincludeScope=runtime']);
}

/**
 * An artifact (`group:artifact:version:type:classifier`, e.g. a tar.gz distribution) unpacked
 * into `dir`, the first time. Without a pom, the unpack goal keeps its "already unpacked"
 * markers under a literal `${project.basedir}/target` of the working directory (and then
 * unpacks nothing a second time): it runs inside the temporary directory, markers removed.
 */
export function mavenUnpacked(dir: string, artifact: string, what: string): Promise<string> {
  return intoCache(dir, what, ['dependency:unpack', `-Dartifact=${artifact}`], { inTmp: true });
}

/**
 * Runs a Maven goal that writes into -DoutputDirectory, into a temporary directory renamed to
 * `dir` once it succeeded (marked .complete): an interrupted fetch is never taken for a done one.
 */
async function intoCache(dir: string, what: string, goal: readonly string[], options: { inTmp?: boolean } = {}): Promise<string> {
  if (existsSync(join(dir, '.complete'))) return dir;
  const mvn = requireExecutable('mvn', `${what} come${what.endsWith('s') ? '' : 's'} from Maven Central: \`apt-get install maven\``);
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  process.stderr.write(`stack: fetching ${what} from Maven Central into ${dir} (once)\n`);
  const out = await runCommand(mvn, ['-q', '-B', ...goal, `-DoutputDirectory=${tmp}`], process.env, options.inTmp ? tmp : undefined);
  if (options.inTmp) rmSync(join(tmp, '${project.basedir}'), { recursive: true, force: true });
  if (out.status !== 0) {
    rmSync(tmp, { recursive: true, force: true });
    const why = out.output.trim().split('\n').slice(-8).join('\n');
    throw new PrerequisiteError(`could not fetch ${what} with Maven (is Maven Central reachable?):\n${why}`);
  }
  writeFileSync(join(tmp, '.complete'), '');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, '..'), { recursive: true });
  renameSync(tmp, dir);
  return dir;
}
