/**
 * The verified client certificate → ClientIdentity, computed once per TLS connection.
 *
 * Subject, issuer and SANs come from the DER, never from Node's strings: `X509Certificate.subject`
 * is not RFC 4514 and `subjectAltName` JSON-quotes values that contain commas (DEPENDENCIES.md §3).
 */
import { createHash } from 'node:crypto';
import type { X509Certificate } from 'node:crypto';
import type { DetailedPeerCertificate, PeerCertificate, TLSSocket } from 'node:tls';
import { readCertificate, readGeneralNames } from '../x509/der.js';
import { dnAttributes, printDn } from '../x509/dn.js';
import type { ClientIdentity } from './types.js';

const NO_SAN: ClientIdentity['san'] = Object.freeze({
  uri: Object.freeze([]), dns: Object.freeze([]), email: Object.freeze([]), ip: Object.freeze([]),
});

/** The fields of a certificate identityFromCertificate reads; an X509Certificate has them. */
export interface CertificateFacts {
  readonly raw: Buffer;
  /** Hex, as OpenSSL prints it. */
  readonly serialNumber: string;
  /** "Nov 24 19:17:32 2026 GMT" (OpenSSL's ASN1_TIME_print). */
  readonly validFrom: string;
  readonly validTo: string;
}

/**
 * Builds the identity of a certificate. `chain` is the intermediates' DER (leaf excluded).
 * Throws DerError for DER that OpenSSL itself refuses, and for a URI/DNS/email SAN that is
 * neither ASCII nor UTF-8 (which OpenSSL lets through): refuse such a client, fail closed.
 */
export function identityFromCertificate(cert: CertificateFacts, chain: readonly Buffer[] = []): ClientIdentity {
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

/** Per connection, not per request: the DER parse and hash run once per TLS session. */
const cache = new WeakMap<TLSSocket, Cached>();

/**
 * The identity of the peer on `socket`, or undefined when it sent no certificate. Computed on
 * first use and then fixed for the connection: should the peer renegotiate to another
 * certificate, the first (verified) one stays the identity. `needChain` fills `chain` with the
 * intermediates that link the leaf to its trust anchor (for RFC 9440 / XFCC Chain and
 * crl_mode: chain); asking for it later upgrades the cached identity.
 *
 * Read through getPeerCertificate, never getPeerX509Certificate: the latter leaks native memory
 * on every call (≈ 2.4 KB, Node 20.20, 22.23 and 24.21 alike; measured in SECURITY.md), which a
 * proxy calling it per connection turns into hundreds of MB a day. getPeerCertificate(true) links
 * the certificates the client sent and completes the path from client_ca, so `chain` is the chain
 * OpenSSL validated, not byte for byte what the client sent: see sentChainOf for that.
 */
export function identityOf(socket: TLSSocket, needChain: boolean): ClientIdentity | undefined {
  const hit = cache.get(socket);
  if (hit === undefined) {
    const peer = socket.getPeerCertificate(needChain);
    // Node answers {} (or null once the socket is gone) when the client sent no certificate.
    const identity = peer?.raw === undefined ? undefined : identityFromCertificate(certificateFacts(peer), needChain ? linkedIntermediates(peer as DetailedPeerCertificate) : []);
    cache.set(socket, { identity, withChain: needChain });
    return identity;
  }
  if (hit.identity === undefined || hit.withChain || !needChain) return hit.identity;
  const chain = linkedIntermediates(socket.getPeerCertificate(true));
  const identity: ClientIdentity = Object.freeze({ ...hit.identity, chain: Object.freeze(chain) });
  cache.set(socket, { identity, withChain: true });
  return identity;
}

/** What identityFromCertificate reads, from Node's PeerCertificate (same OpenSSL formats as X509Certificate's). */
function certificateFacts(peer: PeerCertificate): CertificateFacts {
  return { raw: peer.raw, serialNumber: peer.serialNumber, validFrom: peer.valid_from, validTo: peer.valid_to };
}

/** A client chain is never this long (OpenSSL's default verify depth is 100, real ones are 2-4). */
const MAX_CHAIN = 16;

/**
 * The certificates after the leaf as Node links them through `issuerCertificate` (a self-issued
 * certificate links to itself, which ends the walk). A self-signed root is left out: the upstream has
 * its trust anchors, and RFC 9440 Client-Cert-Chain / XFCC Chain are about what links leaf to anchor.
 */
function linkedIntermediates(leaf: DetailedPeerCertificate): Buffer[] {
  const out: Buffer[] = [];
  const seen = new Set<DetailedPeerCertificate>([leaf]);
  let cert = leaf.issuerCertificate as DetailedPeerCertificate | undefined;
  while (cert?.raw !== undefined && !seen.has(cert) && seen.size <= MAX_CHAIN) {
    seen.add(cert);
    if (cert.issuerCertificate !== cert) out.push(cert.raw);
    cert = cert.issuerCertificate;
  }
  return out;
}

/**
 * Whether this Node lets a handler read the certificates the client sent (through
 * getPeerX509Certificate's issuer links). Measured over a loopback handshake (client sends leaf +
 * intermediate, client_ca holds the root) on 20.20.2, 22.23.5, 24.0.0, 24.20.0, 24.21.0, 24.22.1,
 * 24.22.3, 26.0.0, 26.9.0, 26.10.0 and 26.12.1: all do except 24.21, which reads the peer certificate
 * itself during the handshake and so empties that chain before any handler runs (nodejs/node#65579);
 * getPeerCertificate(true) does not show it there either. 24.22 undid that (and, like 26.9+, lets the
 * chain be read more than once). The assumption this replaces, "hidden from 24 on", made 26 fail. A
 * version rule, not a probe: finding out needs a handshake with a client chain.
 * test/unit/identity.test.ts checks this flag against the running Node; CI runs it on 20, 24 and 26.
 */
export const SENT_CHAIN_EXPOSED = sentChainExposed(process.versions.node);

/** The rule behind SENT_CHAIN_EXPOSED, for a Node version string such as "24.21.0". */
export function sentChainExposed(version: string): boolean {
  const [major, minor] = version.split('.').map(Number);
  return !(major === 24 && minor === 21);
}

const sentChains = new WeakMap<TLSSocket, readonly Buffer[]>();

/**
 * The certificates the client itself sent after its leaf, in TLS order, for re-verifying a live
 * connection after a trust change (would its handshake still succeed?). Only getPeerX509Certificate
 * tells sent from store-completed certificates, and it leaks (see identityOf), so this is read on
 * that rare path only, once per connection. undefined where Node does not tell (SENT_CHAIN_EXPOSED):
 * the re-check then decides from client_ca alone, or says it cannot ("inconclusive" → 421).
 */
export function sentChainOf(socket: TLSSocket): readonly Buffer[] | undefined {
  if (!SENT_CHAIN_EXPOSED) return undefined;
  let sent = sentChains.get(socket);
  if (sent === undefined) {
    const leaf = socket.getPeerX509Certificate();
    sent = Object.freeze(leaf === undefined ? [] : sentIntermediates(leaf));
    sentChains.set(socket, sent);
  }
  return sent;
}

/** getPeerX509Certificate's `issuerCertificate` links are the sent certificates in order; roots left out. */
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
