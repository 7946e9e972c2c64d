/**
 * The identity headers certgate sends upstream, and the client-sent headers it removes first.
 *
 * Upstreams trust these headers because certgate strips every spelling a client could use to
 * forge them: CGI/WSGI and PHP turn `-` and `.` into `_` for their HTTP_* variables, so a
 * client's `X_Client_Cert_Subject` lands on the same HTTP_X_CLIENT_CERT_SUBJECT as ours
 * (Traefik's 2026 advisory; ANCHORS.md §1c row 34).
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { HeadersConfig } from '../config/types.js';
import { byteSequence, escapedPem, percentEncode } from './encode.js';
import type { ClientIdentity } from './types.js';
import { xfccElement } from './xfcc.js';

const CONTROLLED_NAMES = new Set([
  'x-client-cert', 'x-forwarded-client-cert', 'forwarded', 'x-real-ip', 'client-cert', 'client-cert-chain',
]);

/** Whether a request header is one only certgate may set (any case, `_`/`.` spelled as `-`). */
export function isClientControlledHeader(name: string): boolean {
  const folded = name.toLowerCase().replace(/[_.]/g, '-');
  // Prefixes, not exact names: X-Client-Certificate or Client-Cert-Url look like ours to an upstream too.
  return CONTROLLED_NAMES.has(folded) || folded.startsWith('x-client-cert') || folded.startsWith('client-cert') || folded.startsWith('x-forwarded-');
}

/** Deletes, in place, every client-controlled header (Node has already lower-cased the names). */
export function stripClientControlled(headers: IncomingHttpHeaders): void {
  for (const name of Object.keys(headers)) {
    if (isClientControlledHeader(name)) delete headers[name];
  }
}

const NONE: Readonly<Record<string, string>> = Object.freeze({ 'x-client-cert-verified': 'NONE' });

interface Cached {
  readonly key: string;
  readonly headers: Readonly<Record<string, string>>;
}

/** Identity is per connection and headers per request: build once per identity and options. */
const cache = new WeakMap<ClientIdentity, Cached>();

/**
 * The header set for a request: `x-client-cert-verified: NONE` alone without a certificate,
 * otherwise SUCCESS plus the certificate's fields, each omitted when empty. Every value is
 * printable ASCII. The returned object is frozen and shared: copy it, don't change it.
 */
export function identityHeaders(
  identity: ClientIdentity | undefined,
  opts: HeadersConfig,
): Readonly<Record<string, string>> {
  if (identity === undefined) return NONE;
  const key = `${opts.xfcc}/${opts.forward_cert}/${opts.rfc9440}`;
  const hit = cache.get(identity);
  if (hit?.key === key) return hit.headers;
  const headers = Object.freeze(buildHeaders(identity, opts));
  cache.set(identity, { key, headers });
  return headers;
}

function buildHeaders(identity: ClientIdentity, opts: HeadersConfig): Record<string, string> {
  const out: Record<string, string> = { 'x-client-cert-verified': 'SUCCESS' };
  const set = (name: string, value: string): void => {
    if (value !== '') out[name] = value;
  };
  set('x-client-cert-subject', trimSafeDn(identity.subject));
  set('x-client-cert-issuer', trimSafeDn(identity.issuer));
  set('x-client-cert-fingerprint', identity.fingerprint);
  set('x-client-cert-serial', identity.serial);
  set('x-client-cert-not-before', isoSeconds(identity.notBefore));
  set('x-client-cert-not-after', isoSeconds(identity.notAfter));
  set('x-client-cert-san-uri', identity.san.uri.map(percentEncode).join(','));
  set('x-client-cert-san-dns', identity.san.dns.map(percentEncode).join(','));
  set('x-client-cert-san-email', identity.san.email.map(percentEncode).join(','));
  if (opts.xfcc) set('x-forwarded-client-cert', xfccElement(identity, opts.forward_cert));
  if (opts.forward_cert) set('x-client-cert', escapedPem([identity.der]));
  if (opts.rfc9440) {
    set('client-cert', byteSequence(identity.der));
    set('client-cert-chain', identity.chain.map(byteSequence).join(', '));
  }
  return out;
}

/**
 * HTTP drops trailing whitespace from a field value, which would turn a DN ending in an escaped
 * space (`CN=a\ `) into a dangling `CN=a\`. `\20` is the same RFC 4514 escape as `\ `, and the
 * only place this DN differs from openssl's text.
 */
function trimSafeDn(dn: string): string {
  return dn.endsWith(' ') ? `${dn.slice(0, -1)}20` : dn;
}

/** `YYYY-MM-DDTHH:MM:SSZ`: certificate times have whole seconds. */
function isoSeconds(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}
