/**
 * The one CRL reader (pure): DER in, what the material checks (tls/checks/crls.ts) and certgate's own
 * revocation check (tls/revocation/) use out, and the one way to tell which CA signed a CRL: its name
 * is the CA's subject AND the CA's key verifies it.
 */
import 'reflect-metadata'; // @peculiar/x509 resolves its algorithms through tsyringe, which needs it first
import { constants, verify, type X509Certificate } from 'node:crypto';
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
  /**
   * Critical extensions certgate does not process, as findings name them: CRL extensions by OID (e.g.
   * "1.2.3.4") and entry extensions with their serial ("1002: certificateIssuer (2.5.29.29)"). RFC 5280
   * 5.2 and 5.3: a CRL with any of them MUST NOT be used to determine revocation status.
   */
  readonly unprocessedCritical: readonly string[];
  /** The issuingDistributionPoint extension (RFC 5280 5.2.5): which certificates and reasons the CRL covers. */
  readonly idp?: IssuingDistributionPoint;
  /** The signed part, the signature algorithm's OID and the signature, for crlSignedBy. */
  readonly tbs: Buffer;
  readonly signatureAlgorithm: string;
  readonly signature: Buffer;
  /** How node:crypto verifies the signature, or why it cannot (signatureScheme). */
  readonly scheme: SignatureScheme;
}

/** What an issuingDistributionPoint limits (each false/absent: no limit). */
export interface IssuingDistributionPoint {
  /** A distributionPoint name: the CRL covers only certificates whose cRLDistributionPoints name it. */
  readonly distributionPoint: boolean;
  readonly onlyUserCerts: boolean;
  readonly onlyCaCerts: boolean;
  readonly onlyAttributeCerts: boolean;
  /** onlySomeReasons: the CRL lists revocations for these reasons only. */
  readonly onlySomeReasons: boolean;
  /** indirectCRL: entries may be certificates of other issuers (certificateIssuer entry extensions). */
  readonly indirect: boolean;
}

/**
 * What node:crypto's verify() needs for one signature algorithm: the digest (null: EdDSA) and, for
 * RSASSA-PSS, the salt length. `unsupported` says why certgate cannot verify it.
 */
export type SignatureScheme =
  | { readonly hash: string | null; readonly pssSaltLength?: number }
  | { readonly unsupported: string };

/** Signature OIDs → the digest node:crypto's verify() takes (null: EdDSA). RSASSA-PSS: pssScheme. */
const SIGNATURE_HASH: ReadonlyMap<string, string | null> = new Map([
  ['1.2.840.10045.4.1', 'sha1'], ['1.2.840.10045.4.3.1', 'sha224'], ['1.2.840.10045.4.3.2', 'sha256'],
  ['1.2.840.10045.4.3.3', 'sha384'], ['1.2.840.10045.4.3.4', 'sha512'],
  ['1.2.840.113549.1.1.5', 'sha1'], ['1.2.840.113549.1.1.14', 'sha224'], ['1.2.840.113549.1.1.11', 'sha256'],
  ['1.2.840.113549.1.1.12', 'sha384'], ['1.2.840.113549.1.1.13', 'sha512'],
  ['1.3.101.112', null], ['1.3.101.113', null],
]);
const DELTA_CRL_INDICATOR = '2.5.29.27';
const ISSUING_DISTRIBUTION_POINT = '2.5.29.28';
/**
 * The CRL extensions certgate processes, so they may be critical: the same set as OpenSSL's x_crl.c (the
 * IDP and the delta indicator are read here; the authorityKeyIdentifier only helps find the issuer, which
 * certgate finds by name + signature). Any other critical one makes the CRL unusable (RFC 5280 5.2).
 * No entry extension is processed: reasonCode, invalidityDate and holdInstructionCode do not change
 * "listed = revoked" and are never critical; certificateIssuer (always critical) belongs to indirect CRLs,
 * which certgate does not read.
 */
const PROCESSED_CRITICAL: ReadonlySet<string> = new Set([DELTA_CRL_INDICATOR, ISSUING_DISTRIBUTION_POINT, '2.5.29.35']);
const EXTENSION_NAMES: ReadonlyMap<string, string> = new Map([
  ['2.5.29.20', 'cRLNumber'], ['2.5.29.21', 'reasonCode'], ['2.5.29.23', 'holdInstructionCode'], ['2.5.29.24', 'invalidityDate'],
  ['2.5.29.29', 'certificateIssuer'], ['2.5.29.46', 'freshestCRL'], ['1.3.6.1.5.5.7.1.1', 'authorityInfoAccess'],
]);
const extensionText = (oid: string): string => {
  const name = EXTENSION_NAMES.get(oid);
  return name !== undefined ? `${name} (${oid})` : oid;
};
const RSASSA_PSS = '1.2.840.113549.1.1.10';
const MGF1 = '1.2.840.113549.1.1.8';
/** The hash OIDs RSASSA-PSS-params name (RFC 4055 2.1; RFC 5754). */
const HASHES: ReadonlyMap<string, string> = new Map([
  ['1.3.14.3.2.26', 'sha1'], ['2.16.840.1.101.3.4.2.4', 'sha224'], ['2.16.840.1.101.3.4.2.1', 'sha256'],
  ['2.16.840.1.101.3.4.2.2', 'sha384'], ['2.16.840.1.101.3.4.2.3', 'sha512'],
]);

/** The signature AlgorithmIdentifier (SEQUENCE { OID, parameters }) → how to verify it. */
export function signatureScheme(algorithm: Tlv): SignatureScheme {
  const [oid, params] = children(algorithm, 'signatureAlgorithm');
  if (oid === undefined) throw new DerError('signatureAlgorithm: empty');
  expectTag(oid, TAG.OID, 'signatureAlgorithm.algorithm');
  const id = decodeOid(oid.value);
  if (id === RSASSA_PSS) return pssScheme(params);
  const hash = SIGNATURE_HASH.get(id);
  return hash !== undefined ? { hash } : { unsupported: 'an algorithm certgate does not verify' };
}

/**
 * RSASSA-PSS-params ::= SEQUENCE { hashAlgorithm [0] DEFAULT sha1, maskGenAlgorithm [1] DEFAULT mgf1SHA1,
 *   saltLength [2] INTEGER DEFAULT 20, trailerField [3] INTEGER DEFAULT 1 }   (RFC 4055 3.1)
 * node:crypto's verify() takes the digest and the salt length; it runs MGF1 with the signature's own
 * digest, so a CRL whose MGF1 hash differs (allowed, rare; RFC 4055 recommends the same) is refused, as
 * are a mask generation function other than MGF1 and a trailer other than 1 (the only one RFC 4055 defines).
 */
function pssScheme(params: Tlv | undefined): SignatureScheme {
  if (params === undefined || params.tag !== TAG.SEQUENCE) return { unsupported: 'RSASSA-PSS without its parameters' };
  let hash = 'sha1';
  let mgfHash = 'sha1';
  let saltLength = 20;
  for (const field of children(params, 'RSASSA-PSS-params')) {
    const [inner] = children(field, 'RSASSA-PSS-params field');
    if (inner === undefined) return { unsupported: 'RSASSA-PSS with an empty parameter' };
    if (field.tag === 0xa0) {
      const h = hashOf(inner);
      if (h === undefined) return { unsupported: 'RSASSA-PSS over a hash certgate does not know' };
      hash = h;
    } else if (field.tag === 0xa1) {
      const [mgf, mgfParams] = children(inner, 'maskGenAlgorithm');
      if (mgf?.tag !== TAG.OID || decodeOid(mgf.value) !== MGF1 || mgfParams === undefined) {
        return { unsupported: 'RSASSA-PSS with a mask generation function other than MGF1' };
      }
      const h = hashOf(mgfParams);
      if (h === undefined) return { unsupported: 'RSASSA-PSS with MGF1 over a hash certgate does not know' };
      mgfHash = h;
    } else if (field.tag === 0xa2) {
      const n = smallInteger(inner);
      if (n === undefined) return { unsupported: 'RSASSA-PSS with an unreadable salt length' };
      saltLength = n;
    } else if (field.tag === 0xa3) {
      if (smallInteger(inner) !== 1) return { unsupported: 'RSASSA-PSS with a trailer field other than 1' };
    } else {
      return { unsupported: 'RSASSA-PSS with an unknown parameter' };
    }
  }
  if (mgfHash !== hash) return { unsupported: `RSASSA-PSS with MGF1 over ${mgfHash} but the hash ${hash} (node:crypto uses one for both)` };
  return { hash, pssSaltLength: saltLength };
}

function hashOf(algorithm: Tlv): string | undefined {
  if (algorithm.tag !== TAG.SEQUENCE) return undefined;
  const [oid] = children(algorithm, 'hashAlgorithm');
  return oid?.tag === TAG.OID ? HASHES.get(decodeOid(oid.value)) : undefined;
}

/** A non-negative INTEGER of at most 4 bytes (salt lengths, trailer fields), else undefined. */
function smallInteger(tlv: Tlv): number | undefined {
  if (tlv.tag !== TAG.INTEGER || tlv.value.length === 0 || tlv.value.length > 4 || (tlv.value[0] as number) & 0x80) return undefined;
  return tlv.value.readUIntBE(0, tlv.value.length);
}

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
  let scheme: SignatureScheme;
  try {
    scheme = signatureScheme(alg);
  } catch (err) {
    if (!(err instanceof DerError)) throw err;
    scheme = { unsupported: `unreadable signature parameters (${err.message})` };
  }
  const unprocessedCritical: string[] = [];
  const extensions = exts === undefined ? new Map<string, Extension>() : readExtensions(exts, 'crlExtensions');
  for (const [id, ext] of extensions) if (ext.critical && !PROCESSED_CRITICAL.has(id)) unprocessedCritical.push(extensionText(id));
  const idpExt = extensions.get(ISSUING_DISTRIBUTION_POINT);
  return {
    issuer: issuer.raw,
    thisUpdate: new Date(readTime(thisUpdate)),
    ...(next !== undefined && { nextUpdate: new Date(readTime(next)) }),
    revoked: list === undefined ? new Set() : revokedSerials(list.value, unprocessedCritical),
    delta: extensions.has(DELTA_CRL_INDICATOR),
    unprocessedCritical,
    ...(idpExt !== undefined && { idp: readIdp(idpExt.value) }),
    tbs: tbs.raw, signatureAlgorithm: decodeOid(oid.value), signature: sig.value.subarray(1), scheme,
  };
}

/**
 * Walks the entries without building an array of them: CRLs can list hundreds of thousands. An entry is
 * SEQUENCE { userCertificate INTEGER, revocationDate Time, crlEntryExtensions Extensions OPTIONAL }; its
 * critical extensions go to `critical` (only entries that have extensions pay for reading them).
 */
function revokedSerials(list: Buffer, critical: string[]): Set<string> {
  const out = new Set<string>();
  for (let at = 0; at < list.length;) {
    const entry = readTlv(list, at, 'revokedCertificate');
    expectTag(entry, TAG.SEQUENCE, 'revokedCertificate');
    const serial = readTlv(entry.value, 0, 'userCertificate');
    expectTag(serial, TAG.INTEGER, 'userCertificate');
    const hex = unsignedHex(serial.value);
    out.add(hex);
    const date = readTlv(entry.value, serial.raw.length, 'revocationDate');
    const extsAt = serial.raw.length + date.raw.length;
    if (extsAt < entry.value.length) {
      const exts = readTlv(entry.value, extsAt, 'crlEntryExtensions');
      expectTag(exts, TAG.SEQUENCE, 'crlEntryExtensions');
      if (extsAt + exts.raw.length !== entry.value.length) throw new DerError('revokedCertificate: trailing data');
      for (const [id, ext] of readExtensions(exts, 'crlEntryExtensions')) if (ext.critical) critical.push(`${hex}: ${extensionText(id)}`);
    }
    at += entry.raw.length;
  }
  return out;
}

interface Extension {
  readonly critical: boolean;
  /** extnValue's contents (the OCTET STRING's value). */
  readonly value: Buffer;
}

/**
 * Extensions ::= SEQUENCE OF SEQUENCE { extnID OID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING }
 * (`holder` is the [0] EXPLICIT wrapper of crlExtensions, or the entry's SEQUENCE itself). An extension
 * twice is refused (RFC 5280 4.2): two IDPs could each say something else about the CRL's scope.
 */
function readExtensions(holder: Tlv, what: string): Map<string, Extension> {
  let list = holder;
  if (holder.tag !== TAG.SEQUENCE) {
    const inner = children(holder, what);
    if (inner.length !== 1 || inner[0] === undefined) throw new DerError(`${what}: wrong shape`);
    list = inner[0];
    expectTag(list, TAG.SEQUENCE, what);
  }
  const out = new Map<string, Extension>();
  for (const ext of children(list, what)) {
    expectTag(ext, TAG.SEQUENCE, 'Extension');
    const [id, second, third, extra] = children(ext, 'Extension');
    if (id === undefined || second === undefined || extra !== undefined) throw new DerError('Extension: wrong shape');
    expectTag(id, TAG.OID, 'extnID');
    const flagged = third !== undefined;
    if (flagged) {
      expectTag(second, TAG.BOOLEAN, 'critical');
      if (second.value.length !== 1) throw new DerError('critical: not one byte');
    }
    const value = flagged ? third : second;
    expectTag(value, TAG.OCTET_STRING, 'extnValue');
    const oid = decodeOid(id.value);
    if (out.has(oid)) throw new DerError(`the extension ${extensionText(oid)} appears twice`);
    out.set(oid, { critical: flagged && second.value[0] !== 0, value: value.value });
  }
  return out;
}

/**
 * IssuingDistributionPoint ::= SEQUENCE { distributionPoint [0] DistributionPointName OPTIONAL,
 *   onlyContainsUserCerts [1] BOOLEAN DEFAULT FALSE, onlyContainsCACerts [2] BOOLEAN DEFAULT FALSE,
 *   onlySomeReasons [3] ReasonFlags OPTIONAL, indirectCRL [4] BOOLEAN DEFAULT FALSE,
 *   onlyContainsAttributeCerts [5] BOOLEAN DEFAULT FALSE }   (RFC 5280 5.2.5; IMPLICIT tags)
 * More than one of the three "only" flags is invalid (the RFC allows at most one): refused, as OpenSSL
 * never uses such a CRL (IDP_INVALID).
 */
function readIdp(der: Buffer): IssuingDistributionPoint {
  const idp = readOne(der, TAG.SEQUENCE, 'issuingDistributionPoint');
  const flag = (t: Tlv): boolean => {
    if (t.value.length !== 1) throw new DerError('issuingDistributionPoint: a flag is not one byte');
    return t.value[0] !== 0;
  };
  const r = { distributionPoint: false, onlyUserCerts: false, onlyCaCerts: false, onlyAttributeCerts: false, onlySomeReasons: false, indirect: false };
  let last = -1;
  for (const f of children(idp, 'issuingDistributionPoint')) {
    const n = f.tag & 0x1f;
    if ((f.tag & 0xc0) !== 0x80 || n > 5 || n <= last) throw new DerError('issuingDistributionPoint: unexpected field');
    last = n;
    if (n === 0) r.distributionPoint = true;
    else if (n === 1) r.onlyUserCerts = flag(f);
    else if (n === 2) r.onlyCaCerts = flag(f);
    else if (n === 3) r.onlySomeReasons = true;
    else if (n === 4) r.indirect = flag(f);
    else r.onlyAttributeCerts = flag(f);
  }
  if ([r.onlyUserCerts, r.onlyCaCerts, r.onlyAttributeCerts].filter(Boolean).length > 1) {
    throw new DerError('issuingDistributionPoint: more than one of onlyContainsUserCerts, onlyContainsCACerts, onlyContainsAttributeCerts');
  }
  return r;
}

/**
 * What a CRL can tell certgate, from its issuingDistributionPoint: whether it covers end-entity (client)
 * certificates and CA certificates, and, when it is partial, why — a partial CRL lists only some of its
 * CA's revocations (by reason, by distribution point, or mixed with other issuers'), so "not listed" on it
 * does not mean "not revoked", and certgate, which matches no cRLDistributionPoints and reads no
 * certificateIssuer entries, does not use it at all. No IDP: complete, for every certificate of its CA.
 */
export function crlScope(crl: Crl): { readonly ee: boolean; readonly ca: boolean; readonly partial?: string } {
  const idp = crl.idp;
  if (idp === undefined) return { ee: true, ca: true };
  const why = [
    idp.distributionPoint && 'a distributionPoint (it covers only the certificates whose cRLDistributionPoints name it)',
    idp.onlySomeReasons && 'onlySomeReasons (it lists revocations for some reasons only)',
    idp.indirect && 'indirectCRL (it may list other issuers\' certificates)',
  ].filter((w): w is string => w !== false);
  return {
    ee: !idp.onlyCaCerts && !idp.onlyAttributeCerts,
    ca: !idp.onlyUserCerts && !idp.onlyAttributeCerts,
    ...(why.length > 0 && { partial: why.join(', ') }),
  };
}

/** The DER of each CRL in `source`: every X509 CRL block of PEM text, or the one DER buffer. */
export function crlDers(source: CrlSource): Buffer[] {
  if (typeof source !== 'string') return [Buffer.from(source.buffer, source.byteOffset, source.byteLength)];
  return parsePem(source).filter((b) => b.kind === 'crl').map((b) => b.der);
}

/** Names of signature algorithms certgate cannot verify, for findings; any other prints as its OID. */
const UNSUPPORTED_NAMES: ReadonlyMap<string, string> = new Map([
  [RSASSA_PSS, 'RSASSA-PSS'], ['1.2.840.113549.1.1.4', 'md5WithRSAEncryption'],
  ['1.2.840.10040.4.3', 'dsa-with-sha1'], ['2.16.840.1.101.3.4.3.1', 'dsa-with-sha224'], ['2.16.840.1.101.3.4.3.2', 'dsa-with-sha256'],
]);

/**
 * The CRL's signature algorithm as a finding names it, e.g. "dsa-with-sha256 (2.16.840.1.101.3.4.3.2)" or,
 * for RSASSA-PSS parameters node:crypto cannot verify, "RSASSA-PSS (…) with MGF1 over sha1 but the hash sha256 …".
 */
export function crlSignatureText(crl: Crl): string {
  const name = UNSUPPORTED_NAMES.get(crl.signatureAlgorithm);
  const alg = name !== undefined ? `${name} (${crl.signatureAlgorithm})` : crl.signatureAlgorithm;
  return crl.signatureAlgorithm === RSASSA_PSS && 'unsupported' in crl.scheme ? `${alg}: ${crl.scheme.unsupported}` : alg;
}

/** Whether crlSignedBy can check this CRL's signature algorithm at all. */
export function crlSignatureSupported(crl: Crl): boolean {
  return !('unsupported' in crl.scheme);
}

/** `ca`'s key verifies the CRL's signature (false for an algorithm crlSignatureSupported refuses). */
export function crlSignedBy(crl: Crl, ca: X509Certificate): boolean {
  const { scheme } = crl;
  if ('unsupported' in scheme) return false;
  try {
    const key = publicKeyOf(ca);
    return scheme.pssSaltLength === undefined
      ? verify(scheme.hash, crl.tbs, key, crl.signature)
      : verify(scheme.hash, crl.tbs, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: scheme.pssSaltLength }, crl.signature);
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
