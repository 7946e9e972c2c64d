/**
 * Certificates as the probe prints them (pure): RFC 4514 names exactly as `openssl ... -nameopt RFC2253`
 * prints them — so they compare equal to the "Acceptable client certificate CA names" that
 * `openssl s_client -nameopt RFC2253` lists, and to certgate's X-Client-Cert-Subject/-Issuer.
 */
import type { X509Certificate } from 'node:crypto';
import { readCertificate } from '../x509/der.js';
import { printDn } from '../x509/dn.js';
import { authorityKeyId, isSelfSigned, notAfter, notBefore } from '../x509/certificate.js';

export interface CertSummary {
  readonly subject: string;
  readonly issuer: string;
  readonly notBefore: string;
  readonly notAfter: string;
  /** Whole days until notAfter (negative once expired). */
  readonly daysLeft: number;
  readonly notYetValid: boolean;
  readonly selfSigned: boolean;
  readonly ca: boolean;
  /** SHA-256 of the DER, lowercase hex. */
  readonly fingerprint: string;
  /** The authority key id (AA:BB:…), when present: names the issuer's key. */
  readonly authorityKeyId?: string;
  readonly subjectAltName?: string;
}

const DAY_MS = 86_400_000;

/** RFC 4514 subject and issuer; Node's multi-line form joined as a fallback for DER our reader refuses. */
export function namesOf(cert: X509Certificate): { subject: string; issuer: string } {
  try {
    const parts = readCertificate(cert.raw);
    return { subject: printDn(parts.subject), issuer: printDn(parts.issuer) };
  } catch {
    const flat = (s: string): string => s.split('\n').filter((l) => l !== '').reverse().join(',');
    return { subject: flat(cert.subject), issuer: flat(cert.issuer) };
  }
}

export function summarize(cert: X509Certificate, now: Date): CertSummary {
  const { subject, issuer } = namesOf(cert);
  const aki = authorityKeyId(cert);
  return {
    subject, issuer,
    notBefore: notBefore(cert).toISOString(),
    notAfter: notAfter(cert).toISOString(),
    daysLeft: Math.floor((notAfter(cert).getTime() - now.getTime()) / DAY_MS),
    notYetValid: notBefore(cert).getTime() > now.getTime(),
    selfSigned: isSelfSigned(cert),
    ca: cert.ca,
    fingerprint: cert.fingerprint256.replaceAll(':', '').toLowerCase(),
    ...(aki !== undefined && { authorityKeyId: aki }),
    ...(cert.subjectAltName !== undefined && { subjectAltName: cert.subjectAltName }),
  };
}

/** "CN=x,O=y; valid until 2027-01-01 (30 days left)" — one line for listings. */
export function validityText(s: CertSummary): string {
  const until = s.notAfter.slice(0, 10);
  if (s.daysLeft < 0) return `EXPIRED on ${until}`;
  if (s.notYetValid) return `NOT VALID before ${s.notBefore.slice(0, 19)}Z`;
  return `valid until ${until} (${s.daysLeft} day${s.daysLeft === 1 ? '' : 's'} left)`;
}
