/** The server's leaf certificate (pure; `now` is passed in): validity, CA flag, serverAuth, SAN coverage. */
import { isIP } from 'node:net';
import { problem, type Problem } from '../../errors.js';
import { isCa, notAfter, notBefore } from '../../x509/certificate.js';
import { certText, day, type CertRef } from './refs.js';

const DAY_MS = 86_400_000;
/** A leaf expiring within this many days is a warning. */
export const EXPIRY_WARNING_DAYS = 7;
const OID_SERVER_AUTH = '1.3.6.1.5.5.7.3.1';

/** Validity window, CA flag, serverAuth EKU, SAN coverage of the listen host. */
export function checkLeaf(leaf: CertRef, now: Date, listenHost?: string): Problem[] {
  const out: Problem[] = [];
  const { cert, file } = leaf;
  const name = certText(leaf);
  const from = notBefore(cert);
  const to = notAfter(cert);
  if (to < now) {
    out.push(problem('error', 'CG_CERT_EXPIRED', `the leaf certificate ${name} expired on ${to.toISOString()}`, { file }));
  } else if (from > now) {
    out.push(problem('error', 'CG_CERT_NOT_YET_VALID',
      `the leaf certificate ${name} is valid only from ${from.toISOString()} (now ${now.toISOString()})`, { file }));
  } else {
    const days = Math.floor((to.getTime() - now.getTime()) / DAY_MS);
    if (days < EXPIRY_WARNING_DAYS) {
      out.push(problem('warning', 'CG_CERT_EXPIRES_SOON',
        `the leaf certificate ${name} expires in ${days} day${days === 1 ? '' : 's'} (${to.toISOString()})`, { file }));
    } else {
      out.push(problem('info', 'CG_CERT_VALIDITY',
        `the leaf certificate ${name} expires in ${days} days (${day(to)})`, { file,
        hint: `nothing to do now; renew it before ${day(to)}` }));
    }
  }
  if (isCa(cert)) {
    out.push(problem('error', 'CG_CERT_IS_CA',
      `the leaf certificate ${name} is a CA certificate (basicConstraints CA:TRUE); clients reject it as a server certificate`, { file }));
  }
  const eku = cert.keyUsage; // Node: this is the *extended* key usage list
  if (eku !== undefined && eku.length > 0 && !eku.includes(OID_SERVER_AUTH)) {
    out.push(problem('error', 'CG_CERT_EKU',
      `the leaf certificate ${name} has extendedKeyUsage ${eku.map(ekuName).join(', ')} without serverAuth; clients reject it`, { file,
      hint: 'reissue it with extendedKeyUsage serverAuth' }));
  }
  const san = cert.subjectAltName;
  if (san === undefined || san === '') {
    out.push(problem('warning', 'CG_CERT_NO_SAN',
      `the leaf certificate ${name} has no subjectAltName; clients ignore the CN and will reject it`, { file,
      hint: 'reissue it with subjectAltName DNS/IP entries for the names clients connect to' }));
  } else if (listenHost !== undefined && isDnsName(listenHost)
    && cert.checkHost(listenHost, { subject: 'never' }) === undefined) {
    out.push(problem('warning', 'CG_CERT_NO_SAN',
      `the listen host ${listenHost} is not covered by the leaf certificate ${name} (subjectAltName: ${san})`, { file }));
  }
  return out;
}

function isDnsName(host: string): boolean {
  return host !== '' && isIP(host) === 0 && host !== '*';
}

function ekuName(oid: string): string {
  const names: Record<string, string> = {
    '1.3.6.1.5.5.7.3.1': 'serverAuth', '1.3.6.1.5.5.7.3.2': 'clientAuth', '1.3.6.1.5.5.7.3.3': 'codeSigning',
    '1.3.6.1.5.5.7.3.4': 'emailProtection', '1.3.6.1.5.5.7.3.8': 'timeStamping', '1.3.6.1.5.5.7.3.9': 'OCSPSigning',
    '2.5.29.37.0': 'anyExtendedKeyUsage',
  };
  return names[oid] ?? oid;
}
