/**
 * One Envoy `x-forwarded-client-cert` element for the connection's client certificate
 * (ANCHORS.md §4.2). certgate is the first hop and always replaces a client-sent XFCC, so the
 * header holds exactly one element, no `By=` (that names our own certificate's URI SAN).
 *
 * Where we differ from Envoy, on purpose: URI and DNS values are quoted when they contain
 * `,` `;` `=` or `"` (Envoy leaves them raw, so `URI=https://x/a;b` breaks its own grammar,
 * envoy#32945), and `,` `%` `"` `\`, non-ASCII and control bytes in them are percent-encoded.
 * No quoted value then holds a `"`, nor a `\` right before its closing quote, so parsers that
 * read `\"` as the only escape and parsers that read `\` + any char see the same pairs.
 */
import { escapedPem, percentEncodeXfcc } from './encode.js';
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
  // Envoy always quotes Subject (even when empty) and puts the RFC 4514 text in as it is.
  pairs.push(`Subject="${unambiguousDn(identity.subject)}"`);
  for (const uri of identity.san.uri) pairs.push(`URI=${valueText(percentEncodeXfcc(uri))}`);
  for (const dns of identity.san.dns) pairs.push(`DNS=${valueText(percentEncodeXfcc(dns))}`);
  return pairs.join(';');
}

/** The documented XFCC rule: quote a value that holds a separator or a quote. */
function valueText(value: string): string {
  return /[,;="]/.test(value) ? quoted(value) : value;
}

/**
 * The XFCC quoting: `"` inside escaped as `\"`, and `\` as `\\` (RFC 9110 quoted-string).
 * A guard only: the values passed here are percent- or URL-encoded and hold neither.
 */
export function quoted(value: string): string {
  return `"${value.replace(/["\\]/g, '\\$&')}"`;
}

/**
 * The RFC 4514 subject with its two escapes that could end the quotes early, `\"` and `\\` (a
 * value's trailing backslash), written as the equivalent RFC 4514 hex pairs `\22` and `\5C`.
 * The DN means the same, and every other subject stays byte-identical to Envoy's and to
 * X-Client-Cert-Subject (a second escaping layer would turn every `\,` into `\\,`).
 */
function unambiguousDn(dn: string): string {
  return dn.replace(/\\["\\]/g, (pair) => (pair === '\\"' ? '\\22' : '\\5C'));
}
