/**
 * `certgate certs sign --csr`: the operator signs a request with the dev CA (pki/dev-pki.ts). The request
 * is read once, by enrollment's parser (csr.ts), and the certificate built and self-checked as enrollment
 * builds it (build.ts): the CSR's key, its subject, and its URI and DNS names, each in its type's syntax;
 * every extension is certgate's. Issue 13 finding 5 on the CLI path: the signing library used to read the
 * request a second time and copy its SAN extension, so a SAN extension with several values (a hidden
 * otherName UPN and directoryName beside the URI the operator expected) was signed as it stood.
 *
 * Refused with CG_CSR_INVALID, nothing signed: what csr.ts refuses (a bad signature, a malformed or
 * duplicated extension, a SAN outside its type's syntax), a subject certgate cannot rebuild from text
 * (a multi-valued RDN, a value that is not a character string), names of kinds certgate does not issue
 * (email, IP, otherName, directoryName, …: route allow lists match URI and DNS names only), and wildcards
 * (never issued, as in enrollment: match.ts wildcardSan).
 */
import { X509Certificate } from 'node:crypto';
import { CertgateError } from '../errors.js';
import { checkDays, loadDevCa } from '../pki/dev-pki.js';
import { buildClientCertificate } from './build.js';
import { readCsr, type CsrRequest } from './csr.js';
import type { Granted } from './issued.js';
import { wildcardSan } from './match.js';

const DAY_MS = 86_400_000;
const BACKDATE_MS = 5 * 60_000;
const REDO = 'create a new request with one subjectAltName extension of URI/DNS names, e.g. openssl req -new -addext "subjectAltName=URI:spiffe://example.org/svc"';

export interface SignedCsr {
  /** The certificate followed by the dev CA (PEM). */
  readonly chain: string;
  /** RFC 4514, as certgate reads it on every request. */
  readonly subject: string;
  readonly serial: string;
  /** Every SAN of every type in the certificate, as OpenSSL labels them ("URI:…", "DNS:…"). */
  readonly san: readonly string[];
  readonly notAfter: Date;
}

/** Signs `csr` (PEM or DER) with the dev CA in `dir`. Throws CG_CSR_INVALID (the reason and a fix), CG_USAGE for --days. */
export async function signWithDevCa(dir: string, csr: Buffer, opts: { days?: number } = {}): Promise<SignedCsr> {
  const days = checkDays(opts.days);
  const parsed = readCsr(csr);
  if (!parsed.ok) {
    throw new CertgateError('CG_CSR_INVALID', parsed.message, parsed.reason === 'extensions' || parsed.reason === 'san_syntax' ? { hint: REDO } : {});
  }
  const granted = grant(parsed.csr);
  const ca = await loadDevCa(dir);
  const caX509 = new X509Certificate(ca.pem);
  const notBefore = new Date(Date.now() - BACKDATE_MS);
  // Never past the CA's own notAfter: a chain is only as valid as its shortest-lived member.
  const notAfter = new Date(Math.min(notBefore.getTime() + days * DAY_MS, new Date(caX509.validTo).getTime()));
  const built = await buildClientCertificate(granted, { issuer: ca, ca: caX509, notBefore, notAfter });
  return { chain: built.pem + ca.pem, subject: built.identity.subject, serial: built.identity.serial, san: built.san, notAfter: built.identity.notAfter };
}

/** What the operator signs: the request's subject as text, attribute by attribute, and its URI/DNS names. */
function grant(csr: CsrRequest): Granted {
  if (csr.multiValuedRdn) throw new CertgateError('CG_CSR_INVALID', 'the CSR\'s subject has an RDN with several attributes (CN=a+OU=b)', { hint: 'create a new request with one attribute per RDN, e.g. openssl req -new -subj "/O=example/CN=svc-b"' });
  const subject = csr.subject.map(({ oid, text }) => {
    if (text === undefined) throw new CertgateError('CG_CSR_INVALID', `the CSR's subject attribute ${oid} is not a character string`, { hint: 'create a new request whose subject values are text, e.g. openssl req -new -subj "/CN=svc-b"' });
    return [oid, text] as const;
  });
  if (csr.san.other.length > 0) {
    throw new CertgateError('CG_CSR_INVALID', `the CSR asks for names certgate does not issue: ${csr.san.other.join(', ')}; certgate issues URI and DNS names (what route allow lists match)`, { hint: REDO });
  }
  const wildcards = [...csr.san.uri.map((v) => wildcardSan('uri', v)), ...csr.san.dns.map((v) => wildcardSan('dns', v))].filter((w) => w !== undefined);
  if (wildcards.length > 0) throw new CertgateError('CG_CSR_INVALID', wildcards.join('; '), { hint: 'create a new request naming each host or URI exactly' });
  return { subject, san: { uri: [...new Set(csr.san.uri)], dns: [...new Set(csr.san.dns)] }, spki: csr.spki };
}
