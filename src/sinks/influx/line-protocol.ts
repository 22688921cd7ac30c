// What line protocol cannot carry, for every influx mapping (json routes, fan-out, Sparkplug):
// a value that would change the structure of a line is refused before the line is written.
import { lineEscape } from './influx-client.ts';

/** Control characters break a line; a trailing backslash escapes the next separator (measurement, tag, field name). */
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it looks for
export const unsafeIdentifier = /[\x00-\x1f\x7f]|\\$/;
/**
 * Nothing in a tag value that line protocol escapes (a space, a comma, an equals sign, a control
 * character) and no backslash: written as it is, with neither the unsafe check nor the escaper's
 * walk (most tags: device ids, site and zone names). Anything else takes both.
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it looks for
export const escapedOrUnsafe = /[\x00-\x20\x7f,=\\]/;

/** A tag's name or value, or a field's name, as the client's escaper writes it; one with nothing to escape as it is, without the escaper's walk. */
export function escapedTag(s: string): string {
  return escapedOrUnsafe.test(s) ? lineEscape.tag(s) : s;
}
/** A line break inside a string field value. */
export const unsafeString = /[\n\r]/;
export const minInt64 = -(2n ** 63n);
export const maxInt64 = 2n ** 63n - 1n;
