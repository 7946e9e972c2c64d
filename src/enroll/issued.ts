/**
 * The self-check of a certificate enrollment has just built, before it is sent: read back from its DER
 * with certgate's own reader and compared with what was granted, field by field. Pure.
 *
 * Every SAN of every type is compared (not only the URI and DNS names identity later reads: an
 * otherName UPN or a directoryName in a client certificate means something to other relying parties),
 * the subject attribute by attribute, the key byte for byte, and the extension list must be exactly
 * certgate's own: basicConstraints CA:FALSE, keyUsage without certificate/CRL signing, EKU clientAuth
 * only, the key identifiers, and the SAN. Anything else fails closed (the handler answers 500 and
 * spends nothing).
 */
import { DerError, TAG, children, expectTag, readOne, type Tlv } from '../x509/der.js';
import { avaText, readName } from '../x509/dn.js';
import { ExtensionsError, readExtensions, type Extension } from './csr.js';
import { readSanEntries, sanLabel } from './san.js';

export interface Granted {
  /**
   * The subject as built, least-specific first (pki/x509.ts NameSpec), one attribute per RDN: CN/OU by
   * name (enrollment: [['OU', …]?, ['CN', …]]) or any attribute by dotted OID (certs sign), text values.
   */
  readonly subject: ReadonlyArray<readonly [attribute: string, value: string]>;
  readonly san: { readonly uri: readonly string[]; readonly dns: readonly string[] };
  /** SubjectPublicKeyInfo DER. */
  readonly spki: Buffer;
}

const ATTRIBUTE_OIDS: Readonly<Record<string, string>> = { CN: '2.5.4.3', OU: '2.5.4.11' };
const SAN = '2.5.29.17';
const BASIC_CONSTRAINTS = '2.5.29.19';
const KEY_USAGE = '2.5.29.15';
const EKU = '2.5.29.37';
const SKI = '2.5.29.14';
const AKI = '2.5.29.35';
/** SEQUENCE {} : cA FALSE (DER omits the default), no pathLen. */
const CA_FALSE = Buffer.from([0x30, 0x00]);
/** SEQUENCE { id-kp-clientAuth }. */
const CLIENT_AUTH_ONLY = Buffer.from([0x30, 0x0a, 0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02]);
/** keyUsage bits an end-entity client may carry: digitalSignature (0), keyEncipherment (2, RSA). */
const ALLOWED_KEY_USAGE = 0x80 | 0x20;

interface Tbs {
  readonly subject: Tlv;
  readonly spki: Tlv;
  readonly extensions: Extension[];
  readonly uniqueIds: boolean;
}

/** Certificate → TBSCertificate fields this check needs. Throws DerError / ExtensionsError. */
function readTbs(der: Buffer): Tbs {
  const [tbs] = children(readOne(der, TAG.SEQUENCE, 'Certificate'), 'Certificate');
  if (tbs === undefined) throw new DerError('Certificate: empty');
  expectTag(tbs, TAG.SEQUENCE, 'TBSCertificate');
  const fields = children(tbs, 'TBSCertificate');
  const base = fields[0]?.tag === 0xa0 ? 1 : 0;
  const subject = fields[base + 4];
  const spki = fields[base + 5];
  if (subject === undefined || spki === undefined) throw new DerError('TBSCertificate: too few fields');
  const rest = fields.slice(base + 6);
  const explicit = rest.find((f) => f.tag === 0xa3);
  const [list, extra] = explicit === undefined ? [] : children(explicit, 'extensions');
  if (extra !== undefined) throw new DerError('extensions: more than one element in [3]');
  return { subject, spki, extensions: list === undefined ? [] : readExtensions(list), uniqueIds: rest.some((f) => f.tag !== 0xa3) };
}

/** What in `der` differs from `granted`; empty when the certificate says exactly what was granted. */
export function issuedMismatches(der: Buffer, granted: Granted): string[] {
  let tbs: Tbs;
  try {
    tbs = readTbs(der);
  } catch (err) {
    if (err instanceof DerError || err instanceof ExtensionsError) return [`does not parse: ${err.message}`];
    throw err;
  }
  const problems: string[] = [];
  const avas = readName(tbs.subject.raw);
  const sameSubject = avas.length === granted.subject.length && avas.every((a, i) => {
    const [attr, value] = granted.subject[i]!;
    return a.rdn === i && a.oid === (ATTRIBUTE_OIDS[attr] ?? attr) && avaText(a) === value;
  });
  if (!sameSubject) problems.push('its subject is not the granted one');
  if (!tbs.spki.raw.equals(granted.spki)) problems.push('it carries another key');
  if (tbs.uniqueIds) problems.push('it has issuer/subject unique identifiers');
  const wanted = [BASIC_CONSTRAINTS, KEY_USAGE, EKU, SKI, AKI, ...(granted.san.uri.length + granted.san.dns.length > 0 ? [SAN] : [])];
  const have = tbs.extensions.map((e) => e.oid);
  const unexpected = have.filter((oid) => !wanted.includes(oid));
  const missing = wanted.filter((oid) => !have.includes(oid));
  if (unexpected.length > 0) problems.push(`it has extensions certgate does not issue: ${unexpected.join(', ')}`);
  if (missing.length > 0) problems.push(`it lacks extensions: ${missing.join(', ')}`);
  const ext = (oid: string): Extension | undefined => tbs.extensions.find((e) => e.oid === oid);
  const bc = ext(BASIC_CONSTRAINTS);
  if (bc !== undefined && !(bc.critical && bc.value.equals(CA_FALSE))) problems.push('basicConstraints is not a critical CA:FALSE');
  const eku = ext(EKU);
  if (eku !== undefined && !eku.value.equals(CLIENT_AUTH_ONLY)) problems.push('EKU is not clientAuth only');
  const ku = ext(KEY_USAGE);
  if (ku !== undefined && !keyUsageOk(ku.value)) problems.push('keyUsage allows more than digitalSignature/keyEncipherment');
  const expectedSans = [...granted.san.dns.map((v) => `DNS:${v}`), ...granted.san.uri.map((v) => `URI:${v}`)].sort();
  let issuedSans: string[];
  try {
    const san = ext(SAN);
    issuedSans = san === undefined ? [] : readSanEntries(san.value).map(sanLabel).sort();
  } catch (err) {
    if (!(err instanceof DerError)) throw err;
    issuedSans = [`(malformed: ${err.message})`];
  }
  if (!same(issuedSans, expectedSans)) problems.push(`its SANs [${issuedSans.join(', ')}] are not the granted [${expectedSans.join(', ')}]`);
  return problems;
}

/** Every SAN of every type in the certificate, as OpenSSL labels them ("DNS:…", "URI:…", "othername:…"), for the audit line. */
export function issuedSanLabels(der: Buffer): string[] {
  const san = readTbs(der).extensions.find((e) => e.oid === SAN);
  return san === undefined ? [] : readSanEntries(san.value).map(sanLabel);
}

/** KeyUsage BIT STRING: digitalSignature set, nothing outside ALLOWED_KEY_USAGE. */
function keyUsageOk(value: Buffer): boolean {
  let bits: Tlv;
  try {
    bits = readOne(value, 0x03, 'keyUsage');
  } catch {
    return false;
  }
  const [, first = 0, ...more] = bits.value;
  return (first & 0x80) !== 0 && (first & ~ALLOWED_KEY_USAGE) === 0 && more.every((b) => b === 0);
}

function same(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}
