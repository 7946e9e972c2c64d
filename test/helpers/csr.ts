/**
 * Hand-built PKCS#10 requests for the enrollment attack tests: the shapes no CSR tool makes (an
 * Extension with extra elements, duplicated extensions, otherName / directoryName SANs, DNS names
 * with NUL or CR LF), each validly signed by the key it carries, so only certgate's checks can refuse
 * them. Built with the tiny DER writer of helpers/openssl.ts, independent of certgate's reader.
 */
import { createPublicKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { ava, name, oid, rdn, tlv } from './openssl.js';

export const OID = {
  CN: '2.5.4.3',
  OU: '2.5.4.11',
  EXTENSION_REQUEST: '1.2.840.113549.1.9.14',
  SAN: '2.5.29.17',
  BASIC_CONSTRAINTS: '2.5.29.19',
  KEY_USAGE: '2.5.29.15',
  EKU: '2.5.29.37',
  UPN: '1.3.6.1.4.1.311.20.2.3',
  SERVER_AUTH: '1.3.6.1.5.5.7.3.1',
} as const;

const ECDSA_SHA256 = '1.2.840.10045.4.3.2';

/** GeneralName builders (implicit tags as in RFC 5280's GeneralName CHOICE). Text goes in byte for byte. */
export const gn = {
  dns: (v: string): Buffer => tlv(0x82, Buffer.from(v, 'latin1')),
  uri: (v: string): Buffer => tlv(0x86, Buffer.from(v, 'latin1')),
  email: (v: string): Buffer => tlv(0x81, Buffer.from(v, 'latin1')),
  ip: (octets: readonly number[]): Buffer => tlv(0x87, octets),
  /** otherName { Microsoft UPN OID, [0] EXPLICIT UTF8String } — what Windows logon and AD map to an account. */
  upn: (v: string): Buffer => tlv(0xa0, oid(OID.UPN), tlv(0xa0, tlv(0x0c, Buffer.from(v, 'utf8')))),
  /** directoryName [4] EXPLICIT Name. */
  dirName: (cn: string): Buffer => tlv(0xa4, name(rdn(ava(OID.CN, 0x0c, cn)))),
};

export const generalNames = (...names: Buffer[]): Buffer => tlv(0x30, ...names);

/** Extension ::= SEQUENCE { extnID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING } — `parts` follow the id as given. */
export const extension = (id: string, ...parts: Buffer[]): Buffer => tlv(0x30, oid(id), ...parts);
export const octets = (contents: Buffer): Buffer => tlv(0x04, contents);
export const critical = (): Buffer => tlv(0x01, [0xff]);

/** A well-formed SAN extension holding `names`. */
export const san = (...names: Buffer[]): Buffer => extension(OID.SAN, octets(generalNames(...names)));

/** The extensionRequest Attribute holding these Extensions. */
export const extensionRequest = (...extensions: Buffer[]): Buffer => tlv(0x30, oid(OID.EXTENSION_REQUEST), tlv(0x31, tlv(0x30, ...extensions)));

export function ecKey(): KeyObject {
  return generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
}

export interface CraftOptions {
  /** Subject Name DER; default CN=`cn`. */
  readonly subject?: Buffer;
  readonly cn?: string;
  /** Raw Attribute elements for the [0] attributes; default none. */
  readonly attributes?: readonly Buffer[];
}

/** A CertificationRequest DER signed (ECDSA-SHA256) by `key`. */
export function craftCsr(key: KeyObject, o: CraftOptions = {}): Buffer {
  const spki = createPublicKey(key).export({ type: 'spki', format: 'der' });
  const subject = o.subject ?? name(rdn(ava(OID.CN, 0x0c, o.cn ?? 'svc-b')));
  const info = tlv(0x30, tlv(0x02, [0]), subject, spki, tlv(0xa0, ...(o.attributes ?? [])));
  return tlv(0x30, info, tlv(0x30, oid(ECDSA_SHA256)), tlv(0x03, [0], sign('sha256', info, key)));
}

export function csrPem(der: Buffer): string {
  const b64 = der.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n$/, '');
  return `-----BEGIN CERTIFICATE REQUEST-----\n${b64}\n-----END CERTIFICATE REQUEST-----\n`;
}

export function keyPem(key: KeyObject): string {
  return key.export({ type: 'pkcs8', format: 'pem' }).toString();
}

/**
 * The attack of issue 13 finding 5: one SAN Extension with two extnValue OCTET STRINGs. certgate's
 * check used to read the last element, the signing library the first: `hidden` went into the
 * certificate while `shown` was what the token was checked against.
 */
export function smuggledSan(hidden: Buffer, shown: Buffer): Buffer {
  return extension(OID.SAN, octets(hidden), octets(shown));
}
