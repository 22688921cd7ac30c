// How sluice reads a payload as text for JSON: strict UTF-8, a leading byte order mark dropped
// (RFC 8259 section 8.1 lets a parser ignore one; devices on Windows stacks send it). Every
// reader of a payload's JSON (the router, the exact-digits paths, the idempotency key) decodes
// it this way, so what the router parsed, they parse too.

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The payload's text; throws a TypeError when it is not valid UTF-8. */
export function payloadText(payload: Uint8Array): string {
  return utf8.decode(payload);
}

const json = JSON as unknown as { rawJSON(text: string): unknown; isRawJSON(value: unknown): value is { readonly rawJSON: string } };

/**
 * The payload parsed with every number a double does not write back the same way (an int64 past
 * 2^53, `1.50`, `1e400`) kept as the payload's own text: JSON.rawJSON, which JSON.stringify writes
 * as it was and numberText() reads. Costs a reviver call per value: only the paths that need the
 * digits use it, never the router's parse. Throws as JSON.parse does.
 */
export function parseKeepingNumbers(payload: Uint8Array): unknown {
  return JSON.parse(payloadText(payload), keepNumbers as (key: string, value: unknown) => unknown);
}

function keepNumbers(_key: string, value: unknown, context?: { source?: string }): unknown {
  return typeof value === 'number' && context?.source !== undefined && String(value) !== context.source ? json.rawJSON(context.source) : value;
}

/** A number kept by parseKeepingNumbers, as the payload wrote it; undefined for anything else. */
export function numberText(value: unknown): string | undefined {
  return json.isRawJSON(value) ? value.rawJSON : undefined;
}
