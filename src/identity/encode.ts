/**
 * Value encodings shared by the identity headers and the XFCC element. Every function returns
 * printable ASCII, so Node's setHeader can never throw ERR_INVALID_CHAR on a certificate's
 * content (values above U+00FF throw, CR/LF throw; DEPENDENCIES.md §1 and ANCHORS.md A.8).
 */

/** Anything but printable ASCII, plus `%` (the escape itself) and `,` (the list separator). */
const LIST_UNSAFE = /[^\x20-\x24\x26-\x2b\x2d-\x7e]/;
/** As LIST_UNSAFE, plus `"` and `\`, so a quoted XFCC value never needs an escape. */
const XFCC_UNSAFE = /[^\x20\x21\x23\x24\x26-\x2b\x2d-\x5b\x5d-\x7e]/;

/**
 * Percent-encodes `,`, `%`, control characters (incl. CR, LF, NUL, DEL) and every byte >= 0x80
 * of the UTF-8 form, as uppercase `%XX`. `decodeURIComponent` reverses it exactly.
 */
export function percentEncode(value: string): string {
  return encodeUnsafe(value, LIST_UNSAFE);
}

/**
 * percentEncode that also encodes `"` and `\`. Neither is legal in a URI (RFC 3986) or a DNS
 * name, and without them no reading of XFCC quoting (`\"` only, or `\` + any) can disagree.
 */
export function percentEncodeXfcc(value: string): string {
  return encodeUnsafe(value, XFCC_UNSAFE);
}

/** HTTP parsers strip leading and trailing whitespace from field values (RFC 9110 5.5). */
const EDGE_SPACE = /^[ \t]|[ \t]$/;

function encodeUnsafe(value: string, unsafe: RegExp): string {
  if (!unsafe.test(value) && !EDGE_SPACE.test(value)) return value;
  const bytes = Buffer.from(value, 'utf8');
  let out = '';
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i]!;
    const ch = String.fromCharCode(byte);
    // A space at either end would be stripped by the upstream's parser and change the value: encode it.
    const edge = (i === 0 || i === bytes.length - 1) && (byte === 0x20 || byte === 0x09);
    out += edge || unsafe.test(ch) ? `%${byte.toString(16).toUpperCase().padStart(2, '0')}` : ch;
  }
  return out;
}

/** PEM as OpenSSL writes it (PEM_write_bio_X509): 64-column base64, trailing newline. */
export function certificatePem(der: Buffer): string {
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN CERTIFICATE-----\n${lines.join('\n')}\n-----END CERTIFICATE-----\n`;
}

/** Like nginx's $ssl_client_escaped_cert and Envoy's `Cert=`: the PEM text, URL-encoded. */
export function escapedPem(ders: readonly Buffer[]): string {
  return encodeURIComponent(ders.map(certificatePem).join(''));
}

/** RFC 8941 Byte Sequence, as RFC 9440 uses it: `:<base64>:`. */
export function byteSequence(der: Buffer): string {
  return `:${der.toString('base64')}:`;
}
