// InfluxDB v2 write API (/api/v2/write) through @influxdata/influxdb-client's HTTP transport;
// works against InfluxDB 1.8+/2.x and VictoriaMetrics. A 204 means the server has the points
// (InfluxDB appends them to its WAL first). Retriable vs the point's fault, decided here once:
// 400/422 mean a point is bad: the batch is halved until the bad points stand alone and those
// are dead-lettered (InfluxDB 1.8 still writes the good points of a "partial write"; writing
// them again is idempotent). 429 and 5xx wait (Retry-After honoured); 401/403/404 are the
// deployment's fault, not the data's: retried, loudly, until fixed.
import { allDurable, type ItemRejection, type Sink, SinkError, type WriteResult } from '../sink.ts';
import { HttpError, InfluxDB } from './influx-client.ts';

export interface InfluxSinkOptions {
  /** The sink's name (a metric label); default influx. */
  readonly name?: string;
  readonly url: string;
  readonly token?: string | undefined;
  readonly org: string;
  readonly bucket: string;
  readonly timeoutMs: number;
}

export class InfluxSink implements Sink<string> {
  readonly name: string;
  private readonly client: InfluxDB;
  private readonly path: string;
  private readonly options: InfluxSinkOptions;

  constructor(options: InfluxSinkOptions) {
    this.name = options.name ?? 'influx';
    this.options = options;
    this.client = new InfluxDB({ url: options.url, token: options.token ?? '', timeout: options.timeoutMs });
    this.path = `/api/v2/write?${new URLSearchParams({ org: options.org, bucket: options.bucket, precision: 'ns' })}`;
  }

  sizeOf(line: string): number {
    return line.length + 1;
  }

  async write(batch: readonly string[]): Promise<WriteResult> {
    const rejected: ItemRejection[] = [];
    await this.writeIndexes(
      batch,
      batch.map((_, i) => i),
      rejected,
    );
    return rejected.length === 0 ? allDurable : { rejected };
  }

  async close(): Promise<void> {}

  /** An empty write: the server, the credentials and the bucket, checked without a point written. */
  async probe(): Promise<{ ok: boolean; detail: string }> {
    const where = `${this.options.url} bucket ${this.options.bucket}`;
    try {
      await this.post('');
      return { ok: true, detail: `${where}: writable` };
    } catch (err) {
      return { ok: false, detail: describe(err, where) };
    }
  }

  private async writeIndexes(batch: readonly string[], indexes: readonly number[], rejected: ItemRejection[]): Promise<void> {
    if (indexes.length === 0) return;
    try {
      await this.post(indexes.map((i) => batch[i]).join('\n'));
    } catch (err) {
      const status = err instanceof HttpError ? err.statusCode : undefined;
      const pointsAtFault = status === 400 || status === 422 || status === 413;
      if (!pointsAtFault) {
        const retryAfterMs = err instanceof HttpError && (status === 429 || status === 503) ? err.retryAfter() : undefined;
        throw new SinkError(this.name, describe(err, this.options.url), { cause: err, retryAfterMs: retryAfterMs || undefined });
      }
      if (indexes.length === 1) {
        rejected.push({ index: indexes[0] as number, reason: 'rejected-by-influx', error: describe(err, this.options.url) });
        return;
      }
      const mid = Math.ceil(indexes.length / 2);
      await this.writeIndexes(batch, indexes.slice(0, mid), rejected);
      await this.writeIndexes(batch, indexes.slice(mid), rejected);
    }
  }

  private post(body: string): Promise<unknown> {
    return this.client.transport.request(this.path, body, {
      method: 'POST',
      headers: { 'content-type': 'text/plain; charset=utf-8' },
    });
  }
}

function describe(err: unknown, url: string): string {
  if (err instanceof HttpError) return `HTTP ${err.statusCode} from ${url}: ${(err.body ?? err.message).slice(0, 500)}`;
  return `${url}: ${(err as Error).message}`;
}
