/**
 * A PKCS#10 request body (PEM, or DER as `application/pkcs10` sends it) → what enrollment decides on:
 * the subject attributes, the requested SANs, the key, and whether the signature verifies. Pure.
 *
 * Read with certgate's own DER reader (identity/der.ts, identity/dn.ts): the same code that later
 * reads the issued certificate's identity on every request, so what is checked here is what the
 * upstream will be told. Anything this reader cannot account for is refused, never skipped: a
 * GeneralName kind other than URI/DNS/email/IP, a second SAN extension, trailing bytes.
 */
import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import { DerError, TAG, children, decodeOid, expectTag, readGeneralNames, readOne, type Tlv } from '../identity/der.js';
import { dnAttributes, readName } from '../identity/dn.js';
import { parsePem, toPem } from '../tls/pem.js';

export type CsrRejection = 'not_a_csr' | 'signature' | 'signature_algorithm' | 'key_type' | 'key_size' | 'extensions';

export interface CsrRequest {
  /** The CertificationRequest DER, and the same bytes as canonical PEM (what gets signed). */
  readonly der: Buffer;
  readonly pem: string;
  /** Subject attributes by OpenSSL short name (CN, OU, O, …; OID when unnamed), text values, DER order. */
  readonly attributes: ReadonlyMap<string, readonly string[]>;
  /** True when some subject value is not a character string (so `attributes` does not hold it). */
  readonly nonTextAttribute: boolean;
  /** True when an RDN holds several attributes (CN=a+OU=b). */
  readonly multiValuedRdn: boolean;
  readonly san: { readonly uri: readonly string[]; readonly dns: readonly string[]; readonly other: readonly string[] };
  /** "ECDSA P-256", "RSA 2048", … */
  readonly key: string;
  /** SubjectPublicKeyInfo DER, to check the issued certificate carries this key. */
  readonly spki: Buffer;
}

export type CsrResult =
  | { readonly ok: true; readonly csr: CsrRequest }
  | { readonly ok: false; readonly reason: CsrRejection; readonly message: string };

const EXTENSION_REQUEST = '1.2.840.113549.1.9.14';
const SUBJECT_ALT_NAME = '2.5.29.17';
/** Signature algorithms accepted, OID → hash; SHA-1 and MD5 are not (collisions forge requests). */
const SIGNATURE_ALGORITHMS: ReadonlyMap<string, { hash: string; key: 'rsa' | 'ec' }> = new Map([
  ['1.2.840.113549.1.1.11', { hash: 'sha256', key: 'rsa' }],
  ['1.2.840.113549.1.1.12', { hash: 'sha384', key: 'rsa' }],
  ['1.2.840.113549.1.1.13', { hash: 'sha512', key: 'rsa' }],
  ['1.2.840.10045.4.3.2', { hash: 'sha256', key: 'ec' }],
  ['1.2.840.10045.4.3.3', { hash: 'sha384', key: 'ec' }],
  ['1.2.840.10045.4.3.4', { hash: 'sha512', key: 'ec' }],
]);
const CURVES: ReadonlyMap<string, string> = new Map([['prime256v1', 'P-256'], ['secp384r1', 'P-384']]);
export const RSA_MIN_BITS = 2048;
/** Far above any real client key; bounds the cost of verifying a hostile request. */
export const RSA_MAX_BITS = 8192;
const GN_EMAIL = 0x81;
const GN_DNS = 0x82;
const GN_URI = 0x86;
const GN_IP = 0x87;
/** The other GeneralName kinds by name, for refusing them by name (enrollment grants URI and DNS only). */
const GN_KINDS: ReadonlyMap<number, string> = new Map([
  [0xa0, 'otherName'], [0xa3, 'x400Address'], [0xa4, 'directoryName'], [0xa5, 'ediPartyName'], [0x88, 'registeredID'],
]);

class Reject extends Error {
  constructor(readonly reason: CsrRejection, message: string) {
    super(message);
  }
}

/** Reads and verifies a request body. Never throws: every failure is a CsrRejection with a reason. */
export function readCsr(body: Buffer): CsrResult {
  try {
    return { ok: true, csr: read(extractDer(body)) };
  } catch (err) {
    if (err instanceof Reject) return { ok: false, reason: err.reason, message: err.message };
    if (err instanceof DerError) return { ok: false, reason: 'not_a_csr', message: `the CSR does not parse: ${err.message}` };
    throw err;
  }
}

function extractDer(body: Buffer): Buffer {
  if (body.includes('-----BEGIN ')) {
    const blocks = parsePem(body).filter((b) => b.label === 'CERTIFICATE REQUEST' || b.label === 'NEW CERTIFICATE REQUEST');
    if (blocks.length !== 1) {
      throw new Reject('not_a_csr', blocks.length === 0 ? 'no "-----BEGIN CERTIFICATE REQUEST-----" block in the body' : 'the body holds more than one CSR; send one');
    }
    const [block] = blocks as [(typeof blocks)[number]];
    if (block.error !== undefined) throw new Reject('not_a_csr', `the CSR PEM block is unusable: ${block.error}`);
    return block.der;
  }
  if (body.length > 2 && body[0] === TAG.SEQUENCE) return body;
  throw new Reject('not_a_csr', 'the body is neither a PEM nor a DER certificate request');
}

function read(der: Buffer): CsrRequest {
  const [info, algorithm, signature, extra] = children(readOne(der, TAG.SEQUENCE, 'CertificationRequest'), 'CertificationRequest');
  if (info === undefined || algorithm === undefined || signature === undefined || extra !== undefined) {
    throw new DerError('CertificationRequest: expected info, algorithm and signature');
  }
  expectTag(info, TAG.SEQUENCE, 'CertificationRequestInfo');
  const [version, subject, spki, attributes, more] = children(info, 'CertificationRequestInfo');
  if (version === undefined || subject === undefined || spki === undefined || more !== undefined) {
    throw new DerError('CertificationRequestInfo: expected version, subject, key and attributes');
  }
  expectTag(version, TAG.INTEGER, 'version');
  if (version.value.length !== 1 || version.value[0] !== 0) throw new Reject('not_a_csr', 'the CSR version is not 1 (v1 = 0)');
  expectTag(spki, TAG.SEQUENCE, 'SubjectPublicKeyInfo');
  const { key, description } = checkKey(spki.raw);
  checkSignature(info.raw, algorithm, signature, key);
  const avas = readName(subject.raw);
  const names = dnAttributes(subject.raw);
  const textValues = [...names.values()].reduce((n, v) => n + v.length, 0);
  return {
    der, pem: toPem('CERTIFICATE REQUEST', der),
    attributes: names,
    nonTextAttribute: textValues !== avas.length,
    multiValuedRdn: new Set(avas.map((a) => a.rdn)).size !== avas.length,
    san: requestedSan(attributes),
    key: description,
    spki: spki.raw,
  };
}

function checkKey(spkiDer: Buffer): { key: KeyObject; description: string } {
  let key: KeyObject;
  try {
    key = createPublicKey({ key: spkiDer, format: 'der', type: 'spki' });
  } catch {
    throw new Reject('key_type', 'the CSR\'s public key is of a kind certgate does not accept: use ECDSA P-256/P-384 or RSA >= 2048 bits');
  }
  const details = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === 'ec') {
    const curve = CURVES.get(details.namedCurve ?? '');
    if (curve === undefined) throw new Reject('key_type', `ECDSA curve ${details.namedCurve ?? 'unknown'} is not accepted: use P-256 or P-384`);
    return { key, description: `ECDSA ${curve}` };
  }
  if (key.asymmetricKeyType === 'rsa') {
    const bits = details.modulusLength ?? 0;
    if (bits < RSA_MIN_BITS) throw new Reject('key_size', `RSA-${bits} is too small: use RSA >= ${RSA_MIN_BITS} bits or ECDSA P-256`);
    if (bits > RSA_MAX_BITS) throw new Reject('key_size', `RSA-${bits} is larger than the ${RSA_MAX_BITS}-bit limit`);
    return { key, description: `RSA ${bits}` };
  }
  throw new Reject('key_type', `${key.asymmetricKeyType ?? 'unknown'} keys are not accepted: use ECDSA P-256/P-384 or RSA >= ${RSA_MIN_BITS} bits`);
}

/** Proof of possession: the request is signed by the key it asks a certificate for. */
function checkSignature(signedBytes: Buffer, algorithm: Tlv, signature: Tlv, key: KeyObject): void {
  expectTag(algorithm, TAG.SEQUENCE, 'signatureAlgorithm');
  const [oid] = children(algorithm, 'signatureAlgorithm');
  if (oid === undefined) throw new DerError('signatureAlgorithm: empty');
  expectTag(oid, TAG.OID, 'signatureAlgorithm');
  const alg = SIGNATURE_ALGORITHMS.get(decodeOid(oid.value));
  if (alg === undefined || alg.key !== key.asymmetricKeyType) {
    throw new Reject('signature_algorithm', `signature algorithm ${decodeOid(oid.value)} is not accepted for this key: sign with SHA-256 (RSA PKCS#1 v1.5 or ECDSA)`);
  }
  expectTag(signature, 0x03, 'signature');
  if (signature.value[0] !== 0) throw new DerError('signature: BIT STRING with unused bits');
  let ok = false;
  try {
    ok = verify(alg.hash, signedBytes, key, signature.value.subarray(1));
  } catch {
    ok = false;
  }
  if (!ok) throw new Reject('signature', 'the CSR signature does not verify against its own public key (tampered or corrupted request)');
}

/** The SANs of the extensionRequest attribute; at most one such attribute and one SAN extension. */
function requestedSan(attributes: Tlv | undefined): CsrRequest['san'] {
  const none = { uri: [], dns: [], other: [] };
  if (attributes === undefined) return none;
  expectTag(attributes, 0xa0, 'attributes');
  let san: Buffer | undefined;
  let seenRequest = false;
  for (const attribute of children(attributes, 'attributes')) {
    const [type, values] = children(attribute, 'Attribute');
    if (type === undefined || values === undefined) throw new DerError('Attribute: expected type and values');
    if (decodeOid(type.value) !== EXTENSION_REQUEST) continue; // e.g. challengePassword: not used
    if (seenRequest) throw new Reject('extensions', 'the CSR holds two extensionRequest attributes');
    seenRequest = true;
    const [extensions, extraValue] = children(values, 'extensionRequest');
    if (extensions === undefined || extraValue !== undefined) throw new Reject('extensions', 'extensionRequest must hold exactly one Extensions value');
    for (const ext of children(extensions, 'Extensions')) {
      const parts = children(ext, 'Extension');
      const id = parts[0];
      const value = parts[parts.length - 1];
      if (id === undefined || value === undefined || parts.length < 2) throw new DerError('Extension: expected id and value');
      if (decodeOid(id.value) !== SUBJECT_ALT_NAME) continue; // only the SAN is ever copied into the certificate
      if (san !== undefined) throw new Reject('extensions', 'the CSR requests subjectAltName twice');
      expectTag(value, TAG.OCTET_STRING, 'extnValue');
      san = value.value;
    }
  }
  if (san === undefined) return none;
  const other: string[] = [];
  for (const gn of children(readOne(san, TAG.SEQUENCE, 'GeneralNames'), 'GeneralNames')) {
    if (gn.tag === GN_DNS || gn.tag === GN_URI || gn.tag === GN_EMAIL || gn.tag === GN_IP) continue; // read below
    other.push(GN_KINDS.get(gn.tag) ?? `GeneralName [0x${gn.tag.toString(16)}]`);
  }
  const names = readGeneralNames(san);
  other.push(...names.email.map((e) => `email:${e}`), ...names.ip.map((ip) => `IP:${ip}`));
  return { uri: names.uri, dns: names.dns, other };
}
