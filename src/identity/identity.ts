/**
 * The verified client certificate → ClientIdentity, computed once per TLS connection.
 *
 * Subject, issuer and SANs come from the DER, never from Node's strings: `X509Certificate.subject`
 * is not RFC 4514 and `subjectAltName` JSON-quotes values that contain commas (DEPENDENCIES.md §3).
 */
import { createHash } from 'node:crypto';
import type { X509Certificate } from 'node:crypto';
import type { DetailedPeerCertificate, TLSSocket } from 'node:tls';
import { readCertificate, readGeneralNames } from './der.js';
import { dnAttributes, printDn } from './dn.js';
import type { ClientIdentity } from './types.js';

const NO_SAN: ClientIdentity['san'] = Object.freeze({
  uri: Object.freeze([]), dns: Object.freeze([]), email: Object.freeze([]), ip: Object.freeze([]),
});

/**
 * Builds the identity of a certificate. `chain` is the intermediates' DER (leaf excluded).
 * Throws (DerError) only for a certificate whose DER OpenSSL itself would not have accepted.
 */
export function identityFromCertificate(cert: X509Certificate, chain: readonly Buffer[] = []): ClientIdentity {
  const der = cert.raw;
  const parts = readCertificate(der);
  const attributes = dnAttributes(parts.subject);
  return Object.freeze({
    subject: printDn(parts.subject),
    issuer: printDn(parts.issuer),
    subjectCn: Object.freeze([...(attributes.get('CN') ?? [])]),
    subjectOu: Object.freeze([...(attributes.get('OU') ?? [])]),
    fingerprint: createHash('sha256').update(der).digest('hex'),
    // Node already prints it as `openssl x509 -serial` does; upper-casing guards the header contract.
    serial: cert.serialNumber.toUpperCase(),
    notBefore: certificateDate(cert.validFrom, 'validFrom'),
    notAfter: certificateDate(cert.validTo, 'validTo'),
    san: parts.subjectAltName === undefined ? NO_SAN : freezeSan(readGeneralNames(parts.subjectAltName)),
    der,
    chain: Object.freeze([...chain]),
  });
}

function freezeSan(san: ReturnType<typeof readGeneralNames>): ClientIdentity['san'] {
  return Object.freeze({
    uri: Object.freeze(san.uri), dns: Object.freeze(san.dns), email: Object.freeze(san.email), ip: Object.freeze(san.ip),
  });
}

/** `validFrom`/`validTo` look like "Nov 24 19:17:32 2026 GMT" (OpenSSL's ASN1_TIME_print). */
function certificateDate(text: string, field: string): Date {
  const date = new Date(text);
  if (Number.isNaN(date.getTime())) throw new Error(`certificate ${field} is not a date: ${JSON.stringify(text)}`);
  return date;
}

interface Cached {
  readonly identity: ClientIdentity | undefined;
  readonly withChain: boolean;
}

/** Per connection, not per request: getPeerCertificate(true) alone costs ~0.3 ms. */
const cache = new WeakMap<TLSSocket, Cached>();

/**
 * The identity of the peer on `socket`, or undefined when it sent no certificate. Computed on
 * first use and then fixed for the connection: should the peer renegotiate to another
 * certificate, the first (verified) one stays the identity. `needChain` adds the intermediates
 * (for RFC 9440 / XFCC Chain); asking for it later upgrades the cached identity.
 */
export function identityOf(socket: TLSSocket, needChain: boolean): ClientIdentity | undefined {
  const hit = cache.get(socket);
  if (hit !== undefined && (hit.identity === undefined || hit.withChain || !needChain)) return hit.identity;
  let identity: ClientIdentity | undefined;
  if (hit?.identity !== undefined) {
    identity = Object.freeze({ ...hit.identity, chain: Object.freeze(peerIntermediates(socket, hit.identity.der)) });
  } else {
    const cert = socket.getPeerX509Certificate();
    identity = cert === undefined ? undefined : identityFromCertificate(cert, needChain ? peerIntermediates(socket, cert.raw) : []);
  }
  cache.set(socket, { identity, withChain: needChain });
  return identity;
}

/** A verified chain is never this long (OpenSSL's default depth is 100, real ones are 2-4). */
const MAX_CHAIN = 16;

/**
 * Node links the peer chain through `issuerCertificate` (completed from the CA store), ending
 * at a root that references itself. The root is a trust anchor the upstream already has, so only
 * the certificates between leaf and root are returned, in TLS order.
 */
function peerIntermediates(socket: TLSSocket, leafDer: Buffer): Buffer[] {
  const leaf: Partial<DetailedPeerCertificate> = socket.getPeerCertificate(true);
  if (leaf.raw === undefined || !leaf.raw.equals(leafDer)) return [];
  const out: Buffer[] = [];
  const seen = new Set<object>([leaf]);
  let cert = leaf.issuerCertificate;
  while (cert !== undefined && cert.raw !== undefined && !seen.has(cert) && out.length < MAX_CHAIN) {
    if (cert.issuerCertificate === cert) break;
    out.push(cert.raw);
    seen.add(cert);
    cert = cert.issuerCertificate;
  }
  return out;
}
