// @platformatic/kafka as the worker loads it: the entry of vendor/platformatic-kafka.js, which
// scripts/bundle-kafka-client.ts builds from the library with lean-records.ts, lazy-ajv.ts,
// lazy-registry-ajv.ts and lazy-avsc.ts in place of some of its modules. Besides the library's
// own exports, the counters of those modules, read by the tests.
export * from '@platformatic/kafka';
export { lazyAjvCounts } from './lazy-ajv.ts';
export { lazyAvscLoads } from './lazy-avsc.ts';
export { lazyRegistryAjvLoads } from './lazy-registry-ajv.ts';
export { leanRecordsCounts } from './lean-records.ts';
