// Jars from Maven Central for the stack's Java servers (Kafka, HiveMQ): resolved by Maven once
// per pom content into the cache, then run with `java -cp '<dir>/*'`.
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
export async function mavenJars(cacheDir: string, name: string, pom: string, what: string): Promise<string> {
  const libs = mavenJarsDir(cacheDir, name, pom);
  if (existsSync(join(libs, '.complete'))) return libs;
  const mvn = requireExecutable('mvn', `${what}'s jars come from Maven Central: \`apt-get install maven\``);
  const tmp = `${libs}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  process.stderr.write(`stack: fetching ${what} jars from Maven Central into ${libs} (once)\n`);
  const out = await runCommand(mvn, ['-q', '-B', '-f', pom, 'dependency:copy-dependencies', `-DoutputDirectory=${tmp}`,
    '-DincludeScope=runtime']);
  if (out.status !== 0) {
    rmSync(tmp, { recursive: true, force: true });
    const why = out.output.trim().split('\n').slice(-8).join('\n');
    throw new PrerequisiteError(`could not fetch ${what}'s jars with Maven (is Maven Central reachable?):\n${why}`);
  }
  writeFileSync(join(tmp, '.complete'), '');
  rmSync(libs, { recursive: true, force: true });
  mkdirSync(join(libs, '..'), { recursive: true });
  renameSync(tmp, libs);
  return libs;
}
