/**
 * The header dialects (`headers.preset`, issue 18): which identity headers certgate sends and how each
 * value is spelled, per platform an app may have been written against. Pure: an identity (and the
 * connection's TLS facts) in, name → value out; every value printable ASCII.
 *
 * - `certgate`: README "What the upstream receives".
 * - `aws-alb`: AWS ALB mutual TLS *verify* mode, as AWS documents it ("HTTP headers for verify mode",
 *   elasticloadbalancing/latest/application/mutual-authentication): Serial-Number "hexadecimal" (their
 *   example `03A5B1`: uppercase, whole bytes, no separators), Issuer and Subject "RFC2253", Validity
 *   `NotBefore=2023-09-21T01:50:17Z;NotAfter=2024-09-20T01:50:17Z`, Leaf "URL-encoded PEM … with `+=/` as
 *   safe characters" (so `-----BEGIN%20CERTIFICATE-----%0AMIIG…`).
 * - `nginx-ssl`: the common nginx recipe, `proxy_set_header X-SSL-Client-S-DN $ssl_client_s_dn` and so on,
 *   with nginx's own value formats (ANCHORS.md §4.1), checked byte for byte against nginx in
 *   test/e2e/header-dialects-nginx.test.ts. X-SSL-Client-Fingerprint is nginx's SHA-1, not certgate's
 *   SHA-256: apps compare it with stored `$ssl_client_fingerprint` values.
 */
import { createHash } from 'node:crypto';
import { byteSequence, certificatePem, escapedPem, percentEncode } from './encode.js';
import type { ClientIdentity } from './types.js';
import { xfccElement } from './xfcc.js';

export const PRESETS = ['certgate', 'aws-alb', 'nginx-ssl'] as const;
export type Preset = (typeof PRESETS)[number];

/** The connection's TLS facts for `headers.tls_info` (OpenSSL's names, as nginx's $ssl_protocol / $ssl_cipher). */
export interface TlsInfo {
  readonly version: string;
  readonly cipher: string;
}

/** The options that choose headers (config's `headers`, by shape: config/ stands a floor higher). */
export interface DialectChoice {
  readonly preset: Preset;
  readonly xfcc: boolean;
  readonly forward_cert: boolean;
  readonly rfc9440: boolean;
  readonly spiffe_id: boolean;
  readonly tls_info: boolean;
}

/** One header certgate may send: its documented spelling, and its value ('' = not sent). */
export interface HeaderSpec {
  /** As README spells it, e.g. `X-Client-Cert-Subject`. */
  readonly name: string;
  /** Sent also when the client presented no certificate (client_auth: optional). */
  readonly withoutCertificate?: (tls: TlsInfo | undefined) => string;
  readonly value: (identity: ClientIdentity, tls: TlsInfo | undefined) => string;
}

const CERTGATE: readonly HeaderSpec[] = [
  { name: 'X-Client-Cert-Verified', value: () => 'SUCCESS', withoutCertificate: () => 'NONE' },
  { name: 'X-Client-Cert-Subject', value: (id) => headerSafeDn(id.subject) },
  { name: 'X-Client-Cert-Issuer', value: (id) => headerSafeDn(id.issuer) },
  { name: 'X-Client-Cert-Fingerprint', value: (id) => id.fingerprint },
  { name: 'X-Client-Cert-Serial', value: (id) => id.serial },
  { name: 'X-Client-Cert-Not-Before', value: (id) => isoSeconds(id.notBefore) },
  { name: 'X-Client-Cert-Not-After', value: (id) => isoSeconds(id.notAfter) },
  { name: 'X-Client-Cert-SAN-URI', value: (id) => id.san.uri.map(percentEncode).join(',') },
  { name: 'X-Client-Cert-SAN-DNS', value: (id) => id.san.dns.map(percentEncode).join(',') },
  { name: 'X-Client-Cert-SAN-Email', value: (id) => id.san.email.map(percentEncode).join(',') },
];

const AWS_ALB: readonly HeaderSpec[] = [
  { name: 'X-Amzn-Mtls-Clientcert-Serial-Number', value: (id) => wholeBytesHex(id.serial) },
  { name: 'X-Amzn-Mtls-Clientcert-Issuer', value: (id) => headerSafeDn(id.issuer) },
  { name: 'X-Amzn-Mtls-Clientcert-Subject', value: (id) => headerSafeDn(id.subject) },
  { name: 'X-Amzn-Mtls-Clientcert-Validity', value: (id) => `NotBefore=${isoSeconds(id.notBefore)};NotAfter=${isoSeconds(id.notAfter)}` },
  { name: 'X-Amzn-Mtls-Clientcert-Leaf', value: (id) => albLeaf(id.der) },
];

const NGINX_SSL: readonly HeaderSpec[] = [
  // $ssl_client_verify: SUCCESS, or NONE without a certificate (FAILED:… never reaches an upstream here).
  { name: 'X-SSL-Client-Verify', value: () => 'SUCCESS', withoutCertificate: () => 'NONE' },
  { name: 'X-SSL-Client-S-DN', value: (id) => headerSafeDn(id.subject) },
  { name: 'X-SSL-Client-I-DN', value: (id) => headerSafeDn(id.issuer) },
  { name: 'X-SSL-Client-Serial', value: (id) => wholeBytesHex(id.serial) },
  { name: 'X-SSL-Client-Fingerprint', value: (id) => createHash('sha1').update(id.der).digest('hex') },
  { name: 'X-SSL-Client-Cert', value: (id) => escapedPem([id.der]) },
];

const BASE: Readonly<Record<Preset, readonly HeaderSpec[]>> = { certgate: CERTGATE, 'aws-alb': AWS_ALB, 'nginx-ssl': NGINX_SSL };

/** The opt-in headers, sent beside any preset's. */
const XFCC_ONLY: HeaderSpec = { name: 'X-Forwarded-Client-Cert', value: (id) => xfccElement(id, false) };
const XFCC_WITH_CERT: HeaderSpec = { name: 'X-Forwarded-Client-Cert', value: (id) => xfccElement(id, true) };
const FORWARD_CERT: HeaderSpec = { name: 'X-Client-Cert', value: (id) => escapedPem([id.der]) };
const RFC9440: readonly HeaderSpec[] = [
  { name: 'Client-Cert', value: (id) => byteSequence(id.der) },
  { name: 'Client-Cert-Chain', value: (id) => id.chain.map(byteSequence).join(', ') },
];
const SPIFFE_ID: HeaderSpec = { name: 'X-Client-Cert-Spiffe-Id', value: (id) => spiffeId(id.san.uri) };
const TLS_INFO: readonly HeaderSpec[] = [
  { name: 'X-Client-TLS-Version', value: (_id, tls) => tls?.version ?? '', withoutCertificate: (tls) => tls?.version ?? '' },
  { name: 'X-Client-TLS-Cipher', value: (_id, tls) => tls?.cipher ?? '', withoutCertificate: (tls) => tls?.cipher ?? '' },
];

/** The headers `choice` sends, in the order they are sent, before `headers.names` renames any. */
export function headerSpecs(choice: DialectChoice): readonly HeaderSpec[] {
  const out = [...BASE[choice.preset]];
  if (choice.xfcc) out.push(choice.forward_cert ? XFCC_WITH_CERT : XFCC_ONLY);
  if (choice.forward_cert) out.push(FORWARD_CERT);
  if (choice.rfc9440) out.push(...RFC9440);
  if (choice.spiffe_id) out.push(SPIFFE_ID);
  if (choice.tls_info) out.push(...TLS_INFO);
  return out;
}

/** Every header name any preset or option can send (README spelling): what `headers.names` may rename. */
export const ALL_HEADER_NAMES: readonly string[] = [
  ...CERTGATE, ...AWS_ALB, ...NGINX_SSL, XFCC_ONLY, FORWARD_CERT, ...RFC9440, SPIFFE_ID, ...TLS_INFO,
].map((s) => s.name);

/**
 * The one `spiffe://` URI SAN, percent-encoded like the SAN headers; '' when there is none or more than
 * one (an upstream keying on "the" SPIFFE ID must never have to pick).
 */
export function spiffeId(uris: readonly string[]): string {
  let found: string | undefined;
  for (const uri of uris) {
    if (uri.slice(0, 9).toLowerCase() !== 'spiffe://') continue;
    if (found !== undefined) return '';
    found = uri;
  }
  return found === undefined ? '' : percentEncode(found);
}

/**
 * AWS's Leaf encoding: Python's `quote(pem, safe='+=/')` — letters, digits, `-._~` and `+=/` stay, every
 * other byte is `%XX` (uppercase). For a PEM that is space → %20 and newline → %0A, nothing else.
 */
export function albLeaf(der: Buffer): string {
  return certificatePem(der).replace(/[^A-Za-z0-9\-._~+=/]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`);
}

/** Serial hex in whole bytes, as OpenSSL's i2a_ASN1_INTEGER prints it (nginx) and AWS's `03A5B1`. */
export function wholeBytesHex(serial: string): string {
  return serial.length % 2 === 1 ? `0${serial}` : serial;
}

/**
 * HTTP drops trailing whitespace from a field value, which would turn a DN ending in an escaped
 * space (`CN=a\ `) into a dangling `CN=a\`. `\20` is the same RFC 4514 escape as `\ `, and the
 * only place this DN differs from openssl's (and nginx's) text.
 */
export function headerSafeDn(dn: string): string {
  return dn.endsWith(' ') ? `${dn.slice(0, -1)}20` : dn;
}

/** `YYYY-MM-DDTHH:MM:SSZ`: certificate times have whole seconds. */
export function isoSeconds(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}
