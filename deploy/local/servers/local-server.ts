// The contract every server of the local stack keeps, so the stack can install, start, probe
// and stop them alike.
import type { DaemonFiles, LaunchSpec } from '../daemon.ts';

export interface LocalServer {
  readonly name: string;
  /** Started only when named (`stack:up -- kafka-1 ...`), not by a plain `stack:up`. */
  readonly optional?: boolean;
  readonly files: DaemonFiles;
  readonly ports: ReadonlyArray<{ readonly port: number; readonly variable: string }>;
  readonly startTimeoutMs: number;
  /** Debian packages it needs; the stack installs them for all servers in one apt-get call. */
  readonly debianPackages: ReadonlyArray<{ readonly executable: string; readonly pkg: string }>;
  /** Installs or builds into the cache and renders config. Idempotent; may take minutes once per machine. */
  prepare(): Promise<void>;
  launchSpec(): LaunchSpec;
  /** A real client call that succeeds only when the server serves requests. */
  probe(): Promise<void>;
  /** Setup that needs the running server (create a database); idempotent. */
  afterReady?(): Promise<void>;
  /** What a user connects to, for `stack status`. */
  endpoints(): string[];
}
