// versitygw (Versity S3 Gateway, Apache-2.0), built once per machine with `go install` from the
// Go module proxy: the stack's S3 server for the audit log's write-once archive. Its posix
// backend keeps objects as files and, with a versioning directory, enforces Object Lock as S3
// does: a version under COMPLIANCE retention cannot be deleted or shortened by anyone, the root
// user included (the archive test shows the refusal). The bucket `sluice-audit` is created with
// Object Lock on.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { S3Client } from '@aws-sdk/client-s3';
import { goInstalled } from '../go-install.ts';
import type { StackConfig } from '../stack-config.ts';
import type { LocalServer } from './local-server.ts';

export const versitygwVersion = 'v1.8.0';

export function s3Client(config: StackConfig): S3Client {
  return new S3Client({
    endpoint: `http://${config.host}:${config.s3.port}`,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: config.s3.accessKeyId, secretAccessKey: config.s3.secretAccessKey },
  });
}

export function s3Server(config: StackConfig): LocalServer {
  const dir = join(config.runDir, 's3');
  const base = `http://${config.host}:${config.s3.port}`;
  let binary = '';
  return {
    name: 's3',
    files: { pidFile: join(dir, 's3.pid'), logFile: join(dir, 's3.log'), marker: 'versitygw' },
    ports: [{ port: config.s3.port, variable: 'SLUICE_S3_PORT' }],
    startTimeoutMs: 20_000,
    debianPackages: [],

    async prepare() {
      mkdirSync(join(dir, 'buckets'), { recursive: true });
      mkdirSync(join(dir, 'versions'), { recursive: true });
      binary = await goInstalled(config.cacheDir, 'versitygw', versitygwVersion, 'github.com/versity/versitygw/cmd/versitygw', 'versitygw');
    },

    launchSpec() {
      return {
        command: binary,
        args: ['--port', `${config.host}:${config.s3.port}`, '--quiet', 'posix', '--versioning-dir', join(dir, 'versions'), join(dir, 'buckets')],
        cwd: dir,
        env: { ...process.env, ROOT_ACCESS_KEY: config.s3.accessKeyId, ROOT_SECRET_KEY: config.s3.secretAccessKey },
      };
    },

    async probe() {
      const { ListBucketsCommand } = await import('@aws-sdk/client-s3');
      const client = s3Client(config);
      try {
        await client.send(new ListBucketsCommand({}), { abortSignal: AbortSignal.timeout(2_000) });
      } finally {
        client.destroy();
      }
    },

    async afterReady() {
      const { CreateBucketCommand, GetObjectLockConfigurationCommand } = await import('@aws-sdk/client-s3');
      const client = s3Client(config);
      try {
        await client.send(new CreateBucketCommand({ Bucket: config.s3.bucket, ObjectLockEnabledForBucket: true })).catch((err: { name?: string }) => {
          if (err.name !== 'BucketAlreadyOwnedByYou' && err.name !== 'BucketAlreadyExists') throw err;
        });
        const lock = await client.send(new GetObjectLockConfigurationCommand({ Bucket: config.s3.bucket }));
        if (lock.ObjectLockConfiguration?.ObjectLockEnabled !== 'Enabled') throw new Error(`bucket ${config.s3.bucket} has no Object Lock`);
      } finally {
        client.destroy();
      }
    },

    endpoints() {
      return [`${base} (S3, versitygw; bucket ${config.s3.bucket} with Object Lock; keys ${config.s3.accessKeyId} / ${config.s3.secretAccessKey})`];
    },
  };
}
