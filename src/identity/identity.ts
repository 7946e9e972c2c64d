/**
 * The verified client certificate → ClientIdentity, computed once per TLS connection.
 *
 * Subject, issuer and SANs come from the DER, never from Node's strings: `X509Certificate.subject`
 * is not RFC 4514 and `subjectAltName` JSON-quotes values that contain commas (DEPENDENCIES.md §3).
 */
import { createHash } from 'node:crypto';
import type { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { readCertificate, readGeneralNames } from './der.js';
import { dnAttributes, printDn } from './dn.js';
import type { ClientIdentity } from './types.js';

const NO_SAN: ClientIdentity['san'] = Object.freeze({
  uri: Object.freeze([]), dns: Object.freeze([]), email: Object.freeze([]), ip: Object.freeze([]),
});

/**
 * Builds the identity of a certificate. `chain` is the intermediates' DER (leaf excluded).
 * Throws DerError for DER that OpenSSL itself refuses, and for a URI/DNS/email SAN that is
 * neither ASCII nor UTF-8 (which OpenSSL lets through): refuse such a client, fail closed.
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
  /** Intermediates the client sent, captured on first use whether or not asked for (see below). */
  readonly sent: readonly Buffer[];
  readonly withChain: boolean;
}

/** Per connection, not per request: the DER parse and hash run once per TLS session. */
const cache = new WeakMap<TLSSocket, Cached>();

/**
 * The identity of the peer on `socket`, or undefined when it sent no certificate. Computed on
 * first use and then fixed for the connection: should the peer renegotiate to another
 * certificate, the first (verified) one stays the identity. `needChain` fills `chain` with the
 * intermediates the client sent (for RFC 9440 / XFCC Chain); asking for it later upgrades the
 * cached identity.
 *
 * Call this before anything else reads the peer certificate: Node hands the client's chain to
 * the first X509Certificate built from the socket and empties it for every later call
 * (getPeerX509Certificate and getPeerCertificate(true) alike; nodejs/node#65579). On Node
 * versions that read it themselves during the handshake (24.21), `chain` stays empty.
 */
export function identityOf(socket: TLSSocket, needChain: boolean): ClientIdentity | undefined {
  const hit = cache.get(socket);
  if (hit === undefined) {
    const cert = socket.getPeerX509Certificate();
    const sent = cert === undefined ? [] : sentIntermediates(cert);
    const identity = cert === undefined ? undefined : identityFromCertificate(cert, needChain ? sent : []);
    cache.set(socket, { identity, sent, withChain: needChain });
    return identity;
  }
  if (hit.identity === undefined || hit.withChain || !needChain) return hit.identity;
  const identity: ClientIdentity = Object.freeze({ ...hit.identity, chain: Object.freeze([...hit.sent]) });
  cache.set(socket, { identity, sent: hit.sent, withChain: true });
  return identity;
}

/** A client chain is never this long (OpenSSL's default verify depth is 100, real ones are 2-4). */
const MAX_CHAIN = 16;

/**
 * The certificates the client sent after its leaf, in TLS order, as Node links them through
 * `issuerCertificate`. A self-signed root among them is left out: the upstream has its trust
 * anchors, and RFC 9440 Client-Cert-Chain / XFCC Chain are about what links leaf to anchor.
 */
function sentIntermediates(leaf: X509Certificate): Buffer[] {
  const out: Buffer[] = [];
  const seen = new Set<X509Certificate>([leaf]);
  let cert = leaf.issuerCertificate;
  while (cert !== undefined && !seen.has(cert) && seen.size <= MAX_CHAIN) {
    seen.add(cert);
    if (!cert.checkIssued(cert)) out.push(cert.raw);
    cert = cert.issuerCertificate;
  }
  return out;
}
