// Every sink sluice has, one line each. The rules and config schemas take their parts from
// here, the router their compilers, and the worker builds, checks and stops them from here.
import { auditPlugin } from './audit/index.ts';
import { deadLetterPlugin } from './dead-letter/index.ts';
import { filePlugin } from './file/index.ts';
import { influxPlugin } from './influx/index.ts';
import { kafkaPlugin } from './kafka/index.ts';
import type { SinkPlugin } from './plugin.ts';

/** In the order a route's outputs are compiled and a rules file's keys are documented. */
export const sinkPlugins: readonly SinkPlugin[] = [auditPlugin, kafkaPlugin, influxPlugin, filePlugin, deadLetterPlugin];
