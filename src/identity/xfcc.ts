/**
 * One Envoy `x-forwarded-client-cert` element for the connection's client certificate
 * (ANCHORS.md §4.2). certgate is the first hop and always replaces a client-sent XFCC, so the
 * header holds exactly one element, no `By=` (that names our own certificate's URI SAN).
 *
 * Where we differ from Envoy, on purpose: URI and DNS values are quoted when they contain
 * `,` `;` `=` or `"` (Envoy leaves them raw, so `URI=https://x/a;b` breaks its own grammar,
 * envoy#32945), and non-ASCII or control bytes in them are percent-encoded.
 */
import { escapedPem, percentEncode } from './encode.js';
import type { ClientIdentity } from './types.js';

/**
 * Pairs in Envoy's order: Hash, then Cert and Chain (only when `includeCert`), Subject, one URI
 * per URI SAN, one DNS per DNS SAN; joined by `;`. Chain is, as in Envoy, the leaf followed by
 * the intermediates, and is left out when no intermediates are known.
 */
export function xfccElement(identity: ClientIdentity, includeCert: boolean): string {
  const pairs = [`Hash=${identity.fingerprint}`];
  if (includeCert) {
    pairs.push(`Cert=${quoted(escapedPem([identity.der]))}`);
    if (identity.chain.length > 0) pairs.push(`Chain=${quoted(escapedPem([identity.der, ...identity.chain]))}`);
  }
  // Envoy always quotes Subject (even when empty); consumers written for Envoy expect that.
  pairs.push(`Subject=${quoted(unambiguousDn(identity.subject))}`);
  for (const uri of identity.san.uri) pairs.push(`URI=${valueText(percentEncode(uri))}`);
  for (const dns of identity.san.dns) pairs.push(`DNS=${valueText(percentEncode(dns))}`);
  return pairs.join(';');
}

/** The documented XFCC rule: quote a value that holds a separator or a quote. */
function valueText(value: string): string {
  return /[,;="]/.test(value) ? quoted(value) : value;
}

/**
 * An HTTP quoted-string (RFC 9110 5.6.4): `"` and `\` inside are backslash-escaped, so no
 * value can end the quotes early under either common parsing style (`\"` only, or `\` + any).
 */
export function quoted(value: string): string {
  return `"${value.replace(/["\\]/g, '\\$&')}"`;
}

/**
 * The RFC 4514 subject with its two escapes that would need re-escaping inside quotes, `\"` and
 * `\\`, written as the equivalent RFC 4514 hex pairs `\22` and `\5C`. The DN means the same, it
 * then needs no quoted-string escaping, and every other subject stays byte-identical to Envoy's
 * and to X-Client-Cert-Subject (whose `\,` a second escaping layer would turn into `\\,`).
 */
function unambiguousDn(dn: string): string {
  return dn.replace(/\\["\\]/g, (pair) => (pair === '\\"' ? '\\22' : '\\5C'));
}
