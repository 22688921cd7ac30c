// Dead letters as JSON lines in a file, for a deployment without Kafka: each line holds the
// reasons and the whole message (payload as base64), durable (write + fdatasync) before the
// message is acknowledged, through the file sink's writer. A line always fits, so nothing is
// ever rejected; a failed write or fsync is fatal, as for the file sink.
import type { Refusal } from '../../outcome.ts';
import { FileSink } from '../file/file-sink.ts';
import type { DeadLetterItem, Sink, WriteResult } from '../sink.ts';

export class FileDeadLetterSink implements Sink<DeadLetterItem> {
  readonly name = 'dead-letter';
  private readonly file: FileSink;

  constructor(path: string) {
    this.file = new FileSink(path, this.name);
  }

  get path(): string {
    return this.file.path;
  }

  async start(): Promise<void> {
    await this.file.start();
  }

  sizeOf(item: DeadLetterItem): number {
    return Math.ceil(item.message.payload.length * 1.34) + item.message.topic.length + 512;
  }

  async write(batch: readonly DeadLetterItem[]): Promise<WriteResult> {
    return this.file.write(batch.map(deadLetterLine));
  }

  problems(): readonly string[] {
    return this.file.problems();
  }

  async close(): Promise<void> {
    await this.file.close();
  }
}

/** One dead letter as a JSON line: the same facts as the Kafka record's headers (docs/rules.md). */
export function deadLetterLine(item: DeadLetterItem): string {
  const { message, refusals } = item;
  const first = refusals[0] as Refusal;
  const p = message.properties;
  return JSON.stringify({
    receivedAt: new Date(message.receivedAt).toISOString(),
    reason: first.reason,
    stage: first.stage,
    ...(first.route ? { route: first.route } : {}),
    ...(first.sink ? { sink: first.sink } : {}),
    error: refusals
      .map((r) => r.error)
      .join('; ')
      .slice(0, 2000),
    topic: message.topic,
    qos: message.qos,
    ...(message.retain ? { retain: true } : {}),
    ...(p.userProperties ? { userProperties: p.userProperties } : {}),
    ...(p.contentType !== undefined ? { contentType: p.contentType } : {}),
    payloadBase64: message.payload.toString('base64'),
  });
}
