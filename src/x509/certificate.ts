/**
 * What certgate decides about a certificate (pure): who issued it, its validity window, its CA flag and
 * key usage, its authority key id and serial. Read from node:crypto's X509Certificate and the DER
 * (der.ts); the one home of `issuedBy`, which the material checks, revocation and the probe link
 * chains with.
 */
import type { KeyObject, X509Certificate } from 'node:crypto';
import {
  children, DerError, readCertificateExtension, readOne, readSerial, readValidity, TAG, unsignedHex,
} from './der.js';

const OID_BASIC_CONSTRAINTS = '2.5.29.19';
const OID_KEY_USAGE = '2.5.29.15';
const OID_AUTHORITY_KEY_ID = '2.5.29.35';

const keys = new WeakMap<X509Certificate, KeyObject>();

/** `cert.publicKey` builds a new KeyObject on every read; client CAs live as long as the material. */
export function publicKeyOf(cert: X509Certificate): KeyObject {
  let k = keys.get(cert);
  if (k === undefined) {
    k = cert.publicKey;
    keys.set(cert, k);
  }
  return k;
}

/** `parent`'s key verifies `child`'s signature (names are not compared). */
export function signatureVerifies(child: X509Certificate, parent: X509Certificate): boolean {
  try {
    return child.verify(publicKeyOf(parent));
  } catch {
    return false;
  }
}

/** `child` names `parent` as its issuer (OpenSSL's name + key-id compare) and `parent`'s key signed it. */
export function issuedBy(child: X509Certificate, parent: X509Certificate): boolean {
  try {
    return child.checkIssued(parent) && signatureVerifies(child, parent);
  } catch {
    return false;
  }
}

export function isSelfSigned(cert: X509Certificate): boolean {
  return issuedBy(cert, cert);
}

export function sameCertificate(a: X509Certificate, b: X509Certificate): boolean {
  return a === b || a.raw.equals(b.raw);
}

export interface Validity {
  readonly notBefore: Date;
  readonly notAfter: Date;
}

const validities = new WeakMap<X509Certificate, Validity>();

/**
 * The validity window from the DER, to the second. Node's `validFrom`/`validTo` strings are the fallback
 * for DER this reader refuses (Node 20 has no Date getters; Node 22+ does).
 */
export function validityOf(cert: X509Certificate): Validity {
  let v = validities.get(cert);
  if (v === undefined) {
    try {
      const { notBefore, notAfter } = readValidity(cert.raw);
      v = { notBefore: new Date(notBefore), notAfter: new Date(notAfter) };
    } catch {
      const c = cert as X509Certificate & { validFromDate?: Date; validToDate?: Date };
      v = { notBefore: c.validFromDate ?? new Date(c.validFrom), notAfter: c.validToDate ?? new Date(c.validTo) };
    }
    validities.set(cert, v);
  }
  return v;
}

export function notBefore(cert: X509Certificate): Date {
  return validityOf(cert).notBefore;
}

export function notAfter(cert: X509Certificate): Date {
  return validityOf(cert).notAfter;
}

/**
 * basicConstraints CA:TRUE. Node's `x509.ca` is also false for a CA whose keyUsage lacks keyCertSign, so
 * it is only the answer when the extension does not parse.
 */
export function isCa(cert: X509Certificate): boolean {
  try {
    const ext = readCertificateExtension(cert.raw, OID_BASIC_CONSTRAINTS);
    if (ext === undefined) return false;
    // BasicConstraints ::= SEQUENCE { cA BOOLEAN DEFAULT FALSE, pathLenConstraint INTEGER OPTIONAL }
    const [first] = children(readOne(ext, TAG.SEQUENCE, 'BasicConstraints'), 'BasicConstraints');
    if (first?.tag !== TAG.BOOLEAN) return false;
    if (first.value.length !== 1) throw new DerError('BasicConstraints.cA: not one octet');
    return first.value[0] !== 0;
  } catch {
    return cert.ca;
  }
}

export interface KeyUsage {
  readonly keyCertSign: boolean;
  readonly cRLSign: boolean;
}

/** The keyUsage bits certgate checks; undefined when the certificate has no (readable) keyUsage. */
export function keyUsageOf(cert: X509Certificate): KeyUsage | undefined {
  try {
    const ext = readCertificateExtension(cert.raw, OID_KEY_USAGE);
    if (ext === undefined) return undefined;
    // KeyUsage ::= BIT STRING { digitalSignature (0), …, keyCertSign (5), cRLSign (6), … }
    const bits = readOne(ext, 0x03, 'KeyUsage').value;
    if (bits.length === 0 || (bits[0] as number) > 7) throw new DerError('KeyUsage: bad unused-bits octet');
    const bit = (n: number): boolean => (((bits[1 + (n >> 3)] ?? 0) >> (7 - (n & 7))) & 1) === 1;
    return { keyCertSign: bit(5), cRLSign: bit(6) };
  } catch {
    return undefined;
  }
}

function hexColons(bytes: Buffer): string {
  return (bytes.toString('hex').toUpperCase().match(/../g) ?? []).join(':');
}

/** The authority key identifier (AA:BB:…), when the certificate has one. */
export function authorityKeyId(cert: X509Certificate): string | undefined {
  try {
    const ext = readCertificateExtension(cert.raw, OID_AUTHORITY_KEY_ID);
    if (ext === undefined) return undefined;
    // AuthorityKeyIdentifier ::= SEQUENCE { keyIdentifier [0] IMPLICIT OCTET STRING OPTIONAL, … }
    const keyId = children(readOne(ext, TAG.SEQUENCE, 'AuthorityKeyIdentifier'), 'AuthorityKeyIdentifier')
      .find((f) => f.tag === 0x80);
    return keyId !== undefined ? hexColons(keyId.value) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The serial as a CRL lists it (unsigned upper-case hex, crl.ts). Node prints a (non-conforming) negative
 * serial as "-7F7FFF"; the CRL lists the same DER bytes, which read as "808001" here. Read those
 * certificates' serial from the DER so both sides match.
 */
export function serialOf(cert: X509Certificate): string {
  const s = cert.serialNumber;
  if (s.charCodeAt(0) !== 45 /* - */) return s;
  return unsignedHex(readSerial(cert.raw));
}
