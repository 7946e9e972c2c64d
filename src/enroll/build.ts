/**
 * Builds a client certificate from values already parsed and checked once (csr.ts), then reads it back
 * before anyone sees it: the one way certgate issues a certificate for someone else's key, shared by
 * `POST /enroll` (handler.ts, from a token's grant) and `certgate certs sign --csr` (sign.ts, from the
 * request the operator signs).
 *
 * Nothing of the request but its key goes to the signer (pki/x509.ts createClientCertificate): the
 * subject, the SANs and every extension are certgate's. The self-check compares the DER with the grant
 * field by field and every SAN of every type (issued.ts), and has OpenSSL (Node's X509Certificate)
 * confirm the CA flag, EKU, the issuer's signature and the identity certgate will later read. Any
 * difference throws: nothing is returned.
 */
import { X509Certificate } from 'node:crypto';
import { identityFromCertificate } from '../identity/identity.js';
import type { ClientIdentity } from '../identity/types.js';
import { certToPem, createClientCertificate, type Issuer } from '../pki/x509.js';
import { issuedMismatches, issuedSanLabels, type Granted } from './issued.js';

const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

export interface BuiltCertificate {
  /** PEM of the leaf alone. */
  readonly pem: string;
  /** The identity certgate reads from it on every request (subject RFC 4514, serial, SANs). */
  readonly identity: ClientIdentity;
  /** Every SAN of every type the certificate carries, as OpenSSL labels them ("URI:…", "DNS:…"): for audit lines. */
  readonly san: string[];
}

export interface BuildOptions {
  readonly issuer: Issuer;
  /** The same CA certificate as Node reads it: the signature and issuer checks. */
  readonly ca: X509Certificate;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

/** Throws (a plain Error: certgate's own fault, never the requester's) when the certificate says anything but `granted`. */
export async function buildClientCertificate(granted: Granted, o: BuildOptions): Promise<BuiltCertificate> {
  const built = await createClientCertificate({
    issuer: o.issuer, subject: granted.subject, spki: granted.spki, san: granted.san, notBefore: o.notBefore, notAfter: o.notAfter,
  });
  const der = Buffer.from(built.rawData);
  const x = new X509Certificate(der);
  const identity = identityFromCertificate(x);
  const sorted = (a: readonly string[]): string[] => [...a].sort();
  const same = (a: readonly string[], b: readonly string[]): boolean => a.length === b.length && a.every((v, i) => v === b[i]);
  const problems = [
    ...issuedMismatches(der, granted),
    x.ca && 'has the CA flag',
    !same(x.keyUsage ?? [], [CLIENT_AUTH]) && `EKU is ${String(x.keyUsage)}`,
    !(x.checkIssued(o.ca) && x.verify(o.ca.publicKey)) && 'is not signed by the CA',
    !same(sorted(identity.san.uri), sorted(granted.san.uri)) && 'URI SANs (as identity reads them) differ from the grant',
    !same(sorted(identity.san.dns), sorted(granted.san.dns)) && 'DNS SANs (as identity reads them) differ from the grant',
    (identity.san.email.length > 0 || identity.san.ip.length > 0) && 'has email/IP SANs',
  ].filter((p): p is string => typeof p === 'string');
  if (problems.length > 0) throw new Error(`issued certificate failed its self-check: ${problems.join('; ')}`);
  return { pem: certToPem(built), identity, san: issuedSanLabels(der) };
}
