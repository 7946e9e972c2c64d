/** tls.client_ca (pure; `now` is passed in): CA flags and key usage, expiry, roots present, whom it admits. */
import type { X509Certificate } from 'node:crypto';
import { problem, type Problem } from '../../errors.js';
import { isCa, isSelfSigned, issuedBy, keyUsageOf, notAfter, notBefore, publicKeyOf, sameCertificate } from '../../x509/certificate.js';
import { certText, day, displayName, missingIssuer, type CertRef } from './refs.js';

export interface ClientCaInput {
  readonly cas: readonly CertRef[];
  /** The client_ca file, for findings about the file as a whole. */
  readonly file: string;
  readonly now: Date;
  /** The server's leaf + chain, to tell when client_ca only holds the server's own issuers. */
  readonly serverChain?: readonly X509Certificate[];
}

export function checkClientCas(input: ClientCaInput): Problem[] {
  const { cas, file, now } = input;
  const out: Problem[] = [];
  if (cas.length === 0) {
    out.push(problem('error', 'CG_CA_EMPTY', 'tls.client_ca holds no certificate', { file }));
    return out;
  }
  for (const ca of cas) {
    const usage = keyUsageOf(ca.cert);
    if (!isCa(ca.cert)) {
      out.push(problem('error', 'CG_CA_NOT_CA',
        `${certText(ca)} is not a CA certificate (no basicConstraints CA:TRUE); Node cannot use it to verify clients`, { file }));
    } else if (usage !== undefined && !usage.keyCertSign) {
      out.push(problem('error', 'CG_CA_NOT_CA',
        `${certText(ca)} has keyUsage without keyCertSign; OpenSSL will not accept certificates it signed`, { file }));
    }
    if (notAfter(ca.cert) < now) {
      // Every client it issued is refused — an error for `certgate check`, yet loadable (expiry comes with
      // time; it must not stop the server). Unless the CA's renewed certificate (same name and key) is here
      // too and current: OpenSSL picks that one, and nobody is refused.
      const renewed = cas.some((o) => o !== ca && o.cert.subject === ca.cert.subject && notBefore(o.cert) <= now && now <= notAfter(o.cert)
        && publicKeyOf(o.cert).equals(publicKeyOf(ca.cert)));
      out.push(problem(renewed ? 'warning' : 'error', 'CG_CERT_EXPIRED',
        `the client CA ${certText(ca)} expired on ${day(notAfter(ca.cert))}; ${renewed ? 'a current certificate of that CA is also in the file, so clients are verified with that one' : 'clients it issued are refused (CERT_HAS_EXPIRED)'}`,
        { file, hint: renewed ? 'remove the expired certificate from the file' : 'replace it with the CA\'s current certificate', loadable: true }));
    }
  }

  // Every non-self-signed CA must reach a self-signed root inside client_ca.
  for (const ca of cas) {
    if (!ca.cert.ca) continue;
    let top = ca;
    const seen = new Set<CertRef>([top]);
    while (!isSelfSigned(top.cert)) {
      const up = cas.find((c) => !seen.has(c) && issuedBy(top.cert, c.cert));
      if (up === undefined) break;
      seen.add(up);
      top = up;
    }
    if (!isSelfSigned(top.cert)) {
      out.push(problem('error', 'CG_CA_NO_ROOT',
        `${certText(ca)} is an intermediate CA and its root ${missingIssuer(top.cert)} is not in tls.client_ca; Node's TLS server cannot anchor trust at an intermediate, so every client would be refused`,
        { file, hint: `add the certificate of ${displayName(top.cert.issuer)} (the root) to tls.client_ca` }));
    }
  }

  const server = input.serverChain ?? [];
  if (server.length > 0) {
    const own = (c: X509Certificate): boolean =>
      server.some((s) => sameCertificate(s, c) || issuedBy(s, c));
    if (cas.every((c) => own(c.cert))) {
      out.push(problem('info', 'CG_CA_SELF_ONLY',
        `tls.client_ca holds only the CA(s) that issued the server certificate (${cas.map((c) => displayName(c.cert.subject)).join(', ')}); only clients issued by ${cas.length === 1 ? 'it' : 'them'} are accepted`,
        { file, hint: 'nothing to do if that is intended; otherwise add the CAs that issue your client certificates' }));
    }
  }
  return out;
}
