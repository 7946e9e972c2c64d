/**
 * The one CRL reader (pure): DER in, what the material checks (tls/checks/crls.ts) and certgate's own
 * revocation check (tls/revocation/) use out, and the one way to tell which CA signed a CRL: its name
 * is the CA's subject AND the CA's key verifies it.
 */
import 'reflect-metadata'; // @peculiar/x509 resolves its algorithms through tsyringe, which needs it first
import { verify, type X509Certificate } from 'node:crypto';
import * as px from '@peculiar/x509';
import { publicKeyOf } from './certificate.js';
import {
  children, decodeOid, DerError, expectTag, isTime, readCertificate, readOne, readTime, readTlv, TAG, unsignedHex, type Tlv,
} from './der.js';
import { printDn } from './dn.js';
import { parsePem } from './pem.js';

/** A CRL as PEM text (any number of X509 CRL blocks) or as one DER buffer. */
export type CrlSource = string | Uint8Array;

export interface Crl {
  /** The issuer Name element (SEQUENCE), whole encoding. */
  readonly issuer: Buffer;
  readonly thisUpdate: Date;
  /** Absent when the CRL has none (it never goes stale). */
  readonly nextUpdate?: Date;
  /** Serials as unsignedHex prints them (serialOf gives a certificate's in the same form). */
  readonly revoked: ReadonlySet<string>;
  /** A delta CRL (deltaCRLIndicator): it only lists changes against a base CRL. */
  readonly delta: boolean;
  /** The signed part, the signature algorithm's OID and the signature, for crlSignedBy. */
  readonly tbs: Buffer;
  readonly signatureAlgorithm: string;
  readonly signature: Buffer;
}

/** Signature OIDs → the digest node:crypto's verify() takes (null: EdDSA). RSA-PSS is not supported. */
const SIGNATURE_HASH: ReadonlyMap<string, string | null> = new Map([
  ['1.2.840.10045.4.1', 'sha1'], ['1.2.840.10045.4.3.1', 'sha224'], ['1.2.840.10045.4.3.2', 'sha256'],
  ['1.2.840.10045.4.3.3', 'sha384'], ['1.2.840.10045.4.3.4', 'sha512'],
  ['1.2.840.113549.1.1.5', 'sha1'], ['1.2.840.113549.1.1.14', 'sha224'], ['1.2.840.113549.1.1.11', 'sha256'],
  ['1.2.840.113549.1.1.12', 'sha384'], ['1.2.840.113549.1.1.13', 'sha512'],
  ['1.3.101.112', null], ['1.3.101.113', null],
]);
const DELTA_CRL_INDICATOR = '2.5.29.27';

/**
 * CertificateList ::= SEQUENCE { tbsCertList, signatureAlgorithm, signatureValue BIT STRING }
 * TBSCertList ::= SEQUENCE { version INTEGER OPTIONAL, signature, issuer Name, thisUpdate, nextUpdate OPTIONAL,
 *   revokedCertificates SEQUENCE OF SEQUENCE { userCertificate INTEGER, ... } OPTIONAL, [0] crlExtensions OPTIONAL }
 * Throws DerError for anything else.
 */
export function parseCrl(der: Buffer): Crl {
  const [tbs, alg, sig, extra] = children(readOne(der, TAG.SEQUENCE, 'CertificateList'), 'CertificateList');
  if (tbs === undefined || alg === undefined || sig === undefined || extra !== undefined) {
    throw new DerError('CertificateList: wrong shape');
  }
  expectTag(tbs, TAG.SEQUENCE, 'TBSCertList');
  expectTag(sig, 0x03, 'signatureValue');
  const f = children(tbs, 'TBSCertList');
  let i = f[0]?.tag === TAG.INTEGER ? 1 : 0;
  const innerAlg = f[i++];
  const issuer = f[i++];
  const thisUpdate = f[i++];
  if (innerAlg === undefined || issuer === undefined || thisUpdate === undefined) {
    throw new DerError('TBSCertList: too few fields');
  }
  // The outer algorithm is outside the signature; it must repeat the signed one (RFC 5280 5.1.1.2).
  if (!innerAlg.raw.equals(alg.raw)) throw new DerError('CRL signature algorithms differ');
  expectTag(issuer, TAG.SEQUENCE, 'CRL issuer');
  const next = isTime(f[i]) ? f[i++] : undefined;
  const list = f[i]?.tag === TAG.SEQUENCE ? f[i++] : undefined;
  const exts = f[i]?.tag === 0xa0 ? f[i] : undefined;
  const oid = children(alg, 'signatureAlgorithm')[0];
  if (oid === undefined) throw new DerError('signatureAlgorithm: empty');
  expectTag(oid, TAG.OID, 'signatureAlgorithm.algorithm');
  if (sig.value[0] !== 0) throw new DerError('signatureValue has unused bits');
  return {
    issuer: issuer.raw,
    thisUpdate: new Date(readTime(thisUpdate)),
    ...(next !== undefined && { nextUpdate: new Date(readTime(next)) }),
    revoked: list === undefined ? new Set() : revokedSerials(list.value),
    delta: exts !== undefined && hasExtension(exts, DELTA_CRL_INDICATOR),
    tbs: tbs.raw, signatureAlgorithm: decodeOid(oid.value), signature: sig.value.subarray(1),
  };
}

/** Walks the entries without building an array of them: CRLs can list hundreds of thousands. */
function revokedSerials(list: Buffer): Set<string> {
  const out = new Set<string>();
  for (let at = 0; at < list.length;) {
    const entry = readTlv(list, at, 'revokedCertificate');
    expectTag(entry, TAG.SEQUENCE, 'revokedCertificate');
    const serial = readTlv(entry.value, 0, 'userCertificate');
    expectTag(serial, TAG.INTEGER, 'userCertificate');
    out.add(unsignedHex(serial.value));
    at += entry.raw.length;
  }
  return out;
}

function hasExtension(explicit: Tlv, oid: string): boolean {
  const [list] = children(explicit, 'crlExtensions');
  if (list === undefined) return false;
  return children(list, 'Extensions').some((ext) => {
    const id = children(ext, 'Extension')[0];
    return id?.tag === TAG.OID && decodeOid(id.value) === oid;
  });
}

/** The DER of each CRL in `source`: every X509 CRL block of PEM text, or the one DER buffer. */
export function crlDers(source: CrlSource): Buffer[] {
  if (typeof source !== 'string') return [Buffer.from(source.buffer, source.byteOffset, source.byteLength)];
  return parsePem(source).filter((b) => b.kind === 'crl').map((b) => b.der);
}

/** Names of signature algorithms certgate cannot verify, for findings; any other prints as its OID. */
const UNSUPPORTED_NAMES: ReadonlyMap<string, string> = new Map([
  ['1.2.840.113549.1.1.10', 'RSASSA-PSS'], ['1.2.840.113549.1.1.4', 'md5WithRSAEncryption'],
  ['1.2.840.10040.4.3', 'dsa-with-sha1'], ['2.16.840.1.101.3.4.3.1', 'dsa-with-sha224'], ['2.16.840.1.101.3.4.3.2', 'dsa-with-sha256'],
]);

/** The CRL's signature algorithm as a finding names it, e.g. "RSASSA-PSS (1.2.840.113549.1.1.10)". */
export function crlSignatureText(crl: Crl): string {
  const name = UNSUPPORTED_NAMES.get(crl.signatureAlgorithm);
  return name !== undefined ? `${name} (${crl.signatureAlgorithm})` : crl.signatureAlgorithm;
}

/** Whether crlSignedBy can check this CRL's signature algorithm at all. */
export function crlSignatureSupported(crl: Crl): boolean {
  return SIGNATURE_HASH.has(crl.signatureAlgorithm);
}

/** `ca`'s key verifies the CRL's signature (false for an algorithm crlSignatureSupported refuses). */
export function crlSignedBy(crl: Crl, ca: X509Certificate): boolean {
  const hash = SIGNATURE_HASH.get(crl.signatureAlgorithm);
  if (hash === undefined) return false;
  try {
    return verify(hash, crl.tbs, publicKeyOf(ca), crl.signature);
  } catch {
    return false; // e.g. an ECDSA CRL against an RSA CA
  }
}

/** A name in the two forms CRL issuers and CA subjects are compared in. */
export interface ComparableName {
  /** The Name's DER; empty when the certificate's DER could not be read (then no CRL names it). */
  readonly der: Buffer;
  /** RFC 4514 (printDn), when it prints. */
  readonly text?: string;
}

function comparable(der: Buffer): ComparableName {
  try {
    return { der, text: printDn(der) };
  } catch {
    return { der };
  }
}

export function crlIssuerName(crl: Crl): ComparableName {
  return comparable(crl.issuer);
}

export function subjectName(cert: X509Certificate): ComparableName {
  try {
    return comparable(readCertificate(cert.raw).subject);
  } catch {
    return { der: Buffer.alloc(0) };
  }
}

/** Names compare as bytes or as their RFC 4514 text (PrintableString vs UTF8String of one value). */
export function sameName(a: ComparableName, b: ComparableName): boolean {
  return (a.der.length > 0 && a.der.equals(b.der)) || (a.text !== undefined && a.text === b.text);
}

/**
 * The CRL's issuer as certgate publishes it: the `issuer` label of certgate_crl_next_update_timestamp_seconds,
 * /status.json's crls[].issuer and `certgate check`'s CRL findings. That is @peculiar/x509's Name printing
 * (DER order, ", " between RDNs, e.g. "O=certgate dev, CN=certgate dev CA"), kept as it was so dashboards
 * and alert rules keep matching; everything else certgate prints is RFC 4514 (printDn). Should a name
 * not print that way, its RFC 4514 text stands in.
 */
export function crlIssuerLabel(crl: Crl): string {
  try {
    return new px.Name(new Uint8Array(crl.issuer)).toString();
  } catch {
    return crlIssuerName(crl).text ?? `#${crl.issuer.toString('hex')}`;
  }
}
