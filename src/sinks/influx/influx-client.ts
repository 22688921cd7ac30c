// @influxdata/influxdb-client, loaded as CommonJS. Its ES module build does `import * as http from
// "http"`, and on Node 24 an ES import of node:http reads every export of the module, among them
// its lazy WebSocket, CloseEvent and MessageEvent getters, which load Node's bundled undici (and
// http2 with it) into a process that never uses them: ~12 MiB RSS and 2.5 MiB of live heap. The
// CommonJS build requires node:http, which reads nothing. The same classes and functions; one
// copy of the library (every sluice module takes it from here).
import { createRequire } from 'node:module';

type Library = typeof import('@influxdata/influxdb-client');

const library = createRequire(import.meta.url)('@influxdata/influxdb-client') as Library;

export const { InfluxDB, HttpError, Point } = library;
/** The library's line-protocol escapers (measurement, tag, field names and values). */
export const lineEscape = library.escape;
export type InfluxDB = import('@influxdata/influxdb-client').InfluxDB;
export type HttpError = import('@influxdata/influxdb-client').HttpError;
export type Point = import('@influxdata/influxdb-client').Point;
