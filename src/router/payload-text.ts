// How sluice reads a payload as text for JSON: strict UTF-8, a leading byte order mark dropped
// (RFC 8259 section 8.1 lets a parser ignore one; devices on Windows stacks send it). Every
// reader of a payload's JSON (the router, the exact-digits paths, the idempotency key) decodes
// it this way, so what the router parsed, they parse too.

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The payload's text; throws a TypeError when it is not valid UTF-8. */
export function payloadText(payload: Uint8Array): string {
  return utf8.decode(payload);
}
