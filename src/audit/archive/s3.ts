// The audit archive's S3 calls, over the AWS SDK (loaded only when an archive is used, so a
// worker without one never pays for it): a write-once upload under Object Lock, and a listing
// that sees every version of every object (what a delete marker hides or a later write covers).
import { createReadStream } from 'node:fs';
import type { S3Client } from '@aws-sdk/client-s3';

export interface S3Settings {
  /** http(s)://host:port of an S3-compatible server; absent: AWS, by region. */
  readonly endpoint?: string | undefined;
  readonly region: string;
  /** Path-style addressing (bucket in the path): what most S3-compatible servers need. */
  readonly forcePathStyle: boolean;
  /** Absent: the SDK's own chain (AWS_ACCESS_KEY_ID, a profile, a pod's web identity). */
  readonly credentials?: { readonly accessKeyId: string; readonly secretAccessKey: string } | undefined;
  readonly timeoutMs?: number | undefined;
}

export interface LockedObject {
  readonly key: string;
  readonly file: string;
  readonly size: number;
  /** SHA-256 of the bytes, hex: the server checks it on arrival, and a later upload compares it. */
  readonly sha256: string;
  readonly mode: 'COMPLIANCE' | 'GOVERNANCE';
  readonly retainUntil: Date;
}

export interface ObjectVersion {
  readonly key: string;
  readonly versionId: string | undefined;
  readonly size: number;
  readonly lastModified: number;
  readonly deleteMarker: boolean;
  readonly latest: boolean;
}

const quiet = { debug() {}, info() {}, warn() {}, error() {} };

type Sdk = typeof import('@aws-sdk/client-s3');
let sdk: Promise<Sdk> | undefined;
const loadSdk = () => (sdk ??= import('@aws-sdk/client-s3'));

/** The HTTP status and S3 code of an SDK error, for messages that say what the server refused. */
export function s3ErrorText(err: unknown): string {
  const e = err as { name?: string; message?: string; $metadata?: { httpStatusCode?: number } };
  const status = e.$metadata?.httpStatusCode;
  return `${e.name ?? 'Error'}${status ? ` (HTTP ${status})` : ''}: ${e.message ?? String(err)}`;
}

const statusOf = (err: unknown) => (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;

export class S3Store {
  private readonly client: S3Client;
  private readonly api: Sdk;
  readonly bucket: string;

  private constructor(api: Sdk, client: S3Client, bucket: string) {
    this.api = api;
    this.client = client;
    this.bucket = bucket;
  }

  static async open(settings: S3Settings, bucket: string): Promise<S3Store> {
    const api = await loadSdk();
    const client = new api.S3Client({
      region: settings.region,
      forcePathStyle: settings.forcePathStyle,
      ...(settings.endpoint ? { endpoint: settings.endpoint } : {}),
      ...(settings.credentials ? { credentials: { ...settings.credentials } } : {}),
      // the archive retries by itself, segment by segment, and says so in its own log lines
      maxAttempts: 2,
      logger: quiet,
      requestHandler: { requestTimeout: settings.timeoutMs ?? 120_000, connectionTimeout: 10_000 },
    });
    return new S3Store(api, client, bucket);
  }

  /** Whether the bucket has Object Lock on (without it, a retention date cannot be set). */
  async objectLockEnabled(): Promise<boolean> {
    try {
      const r = await this.client.send(new this.api.GetObjectLockConfigurationCommand({ Bucket: this.bucket }));
      return r.ObjectLockConfiguration?.ObjectLockEnabled === 'Enabled';
    } catch (err) {
      if ((err as { name?: string }).name === 'ObjectLockConfigurationNotFoundError') return false;
      throw err;
    }
  }

  /**
   * Writes the file once, locked until `retainUntil`: 'stored', or 'present' when the same bytes
   * are already there (an upload that worked before a crash). Other bytes under the key are an
   * error: an archive is never overwritten.
   */
  async putLocked(o: LockedObject): Promise<'stored' | 'present'> {
    try {
      await this.client.send(
        new this.api.PutObjectCommand({
          Bucket: this.bucket,
          Key: o.key,
          Body: createReadStream(o.file),
          ContentLength: o.size,
          ContentType: 'application/octet-stream',
          ChecksumSHA256: Buffer.from(o.sha256, 'hex').toString('base64'),
          Metadata: { sha256: o.sha256 },
          ObjectLockMode: o.mode,
          ObjectLockRetainUntilDate: o.retainUntil,
          IfNoneMatch: '*',
        }),
      );
      return 'stored';
    } catch (err) {
      if (statusOf(err) !== 412 && statusOf(err) !== 409) throw err;
    }
    const head = await this.client.send(new this.api.HeadObjectCommand({ Bucket: this.bucket, Key: o.key }));
    if (head.Metadata?.sha256 === o.sha256 && head.ContentLength === o.size) return 'present';
    throw new Error(
      `s3://${this.bucket}/${o.key} already holds other bytes (${head.ContentLength} bytes, sha256 ${head.Metadata?.sha256 ?? 'not recorded'}): the archive is never overwritten; find out who wrote it`,
    );
  }

  /** Every version of every object under the prefix, delete markers included; a key's versions newest first, as S3 lists them. */
  async versions(prefix: string): Promise<ObjectVersion[]> {
    const out: ObjectVersion[] = [];
    let keyMarker: string | undefined;
    let versionMarker: string | undefined;
    for (;;) {
      const r = await this.client.send(
        new this.api.ListObjectVersionsCommand({ Bucket: this.bucket, Prefix: prefix, KeyMarker: keyMarker, VersionIdMarker: versionMarker }),
      );
      for (const v of r.Versions ?? []) {
        out.push({
          key: v.Key ?? '',
          versionId: v.VersionId,
          size: v.Size ?? 0,
          lastModified: v.LastModified?.getTime() ?? 0,
          deleteMarker: false,
          latest: v.IsLatest === true,
        });
      }
      for (const m of r.DeleteMarkers ?? []) {
        out.push({
          key: m.Key ?? '',
          versionId: m.VersionId,
          size: 0,
          lastModified: m.LastModified?.getTime() ?? 0,
          deleteMarker: true,
          latest: m.IsLatest === true,
        });
      }
      if (!r.IsTruncated) return out;
      keyMarker = r.NextKeyMarker;
      versionMarker = r.NextVersionIdMarker;
    }
  }

  /** The keys under the prefix (current versions only). */
  async keys(prefix: string): Promise<Set<string>> {
    const out = new Set<string>();
    let token: string | undefined;
    for (;;) {
      const r = await this.client.send(new this.api.ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token }));
      for (const o of r.Contents ?? []) if (o.Key) out.add(o.Key);
      if (!r.IsTruncated) return out;
      token = r.NextContinuationToken;
    }
  }

  /** One version of an object, as a stream. */
  async read(key: string, versionId: string | undefined): Promise<NodeJS.ReadableStream> {
    const r = await this.client.send(
      new this.api.GetObjectCommand({ Bucket: this.bucket, Key: key, ...(versionId && versionId !== 'null' ? { VersionId: versionId } : {}) }),
    );
    return r.Body as NodeJS.ReadableStream;
  }

  /** Deletes one version (or the current object): under COMPLIANCE retention the server must refuse it. */
  async deleteVersion(key: string, versionId: string | undefined): Promise<void> {
    await this.client.send(new this.api.DeleteObjectCommand({ Bucket: this.bucket, Key: key, ...(versionId ? { VersionId: versionId } : {}) }));
  }

  close(): void {
    this.client.destroy();
  }
}

/** A key prefix as a folder: with a trailing slash, unless empty. */
export function folder(prefix: string): string {
  return prefix === '' || prefix.endsWith('/') ? prefix : `${prefix}/`;
}

/** `s3://bucket/prefix` as bucket and prefix (the prefix without a leading slash, as a folder). */
export function parseS3Url(url: string): { bucket: string; prefix: string } {
  const m = /^s3:\/\/([^/]+)\/?(.*)$/.exec(url);
  if (!m) throw new Error(`${url} is not an s3://bucket/prefix address`);
  return { bucket: m[1] as string, prefix: folder((m[2] as string).replace(/^\/+/, '')) };
}
