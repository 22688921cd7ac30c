// The influx section of the service config: where the /api/v2/write server is and how points
// are batched. Required when a route has an influx part.
import { z } from 'zod';
import { urlProblem } from '../../addresses.ts';
import { secretRef } from '../../secrets.ts';

export const influxConfig = z
  .strictObject({
    url: z
      .string()
      .superRefine((v, ctx) => {
        const problem = urlProblem(v, ['http:', 'https:']);
        if (problem) ctx.addIssue({ code: 'custom', message: problem });
      })
      .describe('base URL; sluice POSTs to <url>/api/v2/write'),
    token: secretRef.optional().describe('InfluxDB 2 token, or "user:password" for 1.8'),
    org: z.string().default('').describe('InfluxDB 2 organisation (empty for 1.8)'),
    bucket: z.string().min(1).describe('bucket; "database/retention-policy" for InfluxDB 1.8'),
    batch: z
      .strictObject({
        maxPoints: z.int().min(1).default(5000).describe('points per write at most'),
        lingerMs: z.int().min(0).default(50).describe('how long a batch waits to fill; it goes at once when an ack window is full'),
        concurrency: z
          .int()
          .min(1)
          .max(16)
          .default(2)
          .describe('batches written at once (points are idempotent and carry their own time, so order between batches does not matter)'),
      })
      .prefault({})
      .describe('batching of line-protocol writes'),
    timeoutMs: z.int().min(100).default(10_000).describe('a write not answered within this is retried'),
  })
  .optional()
  .describe('required when a route has an influx output');

export type InfluxConfig = NonNullable<z.infer<typeof influxConfig>>;
