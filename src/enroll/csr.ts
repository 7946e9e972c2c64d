/**
 * A PKCS#10 request body (PEM, or DER as `application/pkcs10` sends it) → what enrollment decides on:
 * the subject attributes, the requested SANs, the key, and whether the signature verifies. Pure.
 *
 * Read with certgate's own DER reader (x509/der.ts, x509/dn.ts): the same code that later
 * reads the issued certificate's identity on every request, so what is checked here is what the
 * upstream will be told. Anything this reader cannot account for is refused, never skipped: a
 * malformed or duplicated extension, an Extension with more elements than extnID, critical and one
 * extnValue, a SAN value outside its type's syntax, trailing bytes.
 *
 * This is the only parse of the request: what it returns is what enrollment checks (match.ts) and
 * what the issued certificate is built from (the key and the checked names; pki/x509.ts
 * createClientCertificate). No other library reads the CSR, so no two readings can disagree
 * (issue 13 finding 5: a SAN Extension with two extnValues was read one way here and another way by
 * the signing library, which issued an otherName UPN the token never granted).
 */
import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import { DerError, TAG, children, decodeOid, expectTag, readOne, type Tlv } from '../x509/der.js';
import { avaText, dnAttributes, readName } from '../x509/dn.js';
import { parsePem } from '../x509/pem.js';
import { readSanEntries, sanLabel, sanSyntaxProblem, type SanEntry } from './san.js';

export type CsrRejection = 'not_a_csr' | 'signature' | 'signature_algorithm' | 'key_type' | 'key_size' | 'extensions' | 'san_syntax';

export interface CsrRequest {
  /** The CertificationRequest DER (never handed to a signer: the certificate is built from the fields below). */
  readonly der: Buffer;
  /** Subject attributes by OpenSSL short name (CN, OU, O, …; OID when unnamed), text values, DER order. */
  readonly attributes: ReadonlyMap<string, readonly string[]>;
  /**
   * The subject's attributes in DER order: OID, RDN index, and the value as text (undefined when it is not a
   * character string). What `certgate certs sign` rebuilds the issued subject from (enroll/sign.ts).
   */
  readonly subject: ReadonlyArray<{ readonly oid: string; readonly rdn: number; readonly text: string | undefined }>;
  /** True when some subject value is not a character string (so `attributes` does not hold it). */
  readonly nonTextAttribute: boolean;
  /** True when an RDN holds several attributes (CN=a+OU=b). */
  readonly multiValuedRdn: boolean;
  /**
   * The requested SANs by type, each already checked against its type's syntax (san.ts). `other`
   * names, as OpenSSL labels them, the kinds no token grants (email:…, IP:…, othername:OID,
   * DirName:…, …), for the 403 and `certs sign`'s refusal.
   */
  readonly san: { readonly uri: readonly string[]; readonly dns: readonly string[]; readonly other: readonly string[] };
  /** "ECDSA P-256", "RSA 2048", … */
  readonly key: string;
  /** The SubjectPublicKeyInfo as Node re-encodes the verified key: the one thing of the CSR the certificate carries as is. */
  readonly spki: Buffer;
}

export type CsrResult =
  | { readonly ok: true; readonly csr: CsrRequest }
  | { readonly ok: false; readonly reason: CsrRejection; readonly message: string };

const EXTENSION_REQUEST = '1.2.840.113549.1.9.14';
const SUBJECT_ALT_NAME = '2.5.29.17';
/** Far above any real client (a SPIFFE id and a few host names); keeps the audit line listing every name bounded. */
export const MAX_SANS = 100;
/** Extension names for messages. */
const EXTENSION_NAMES: ReadonlyMap<string, string> = new Map([
  [SUBJECT_ALT_NAME, 'subjectAltName'], ['2.5.29.19', 'basicConstraints'], ['2.5.29.15', 'keyUsage'], ['2.5.29.37', 'extKeyUsage'],
  ['2.5.29.14', 'subjectKeyIdentifier'], ['2.5.29.35', 'authorityKeyIdentifier'], ['2.5.29.30', 'nameConstraints'],
]);
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
  if (attributes !== undefined && attributes.tag !== 0xa0) throw new DerError(`attributes: expected tag 0xa0, found 0x${attributes.tag.toString(16)}`);
  const avas = readName(subject.raw);
  const names = dnAttributes(subject.raw);
  const textValues = [...names.values()].reduce((n, v) => n + v.length, 0);
  return {
    der,
    attributes: names,
    subject: avas.map((a) => ({ oid: a.oid, rdn: a.rdn, text: avaText(a) })),
    nonTextAttribute: textValues !== avas.length,
    multiValuedRdn: new Set(avas.map((a) => a.rdn)).size !== avas.length,
    san: requestedSan(attributes),
    key: description,
    spki: key.export({ type: 'spki', format: 'der' }),
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

/** An Extension of a CSR's extensionRequest (or of a certificate), its shape checked. */
export interface Extension {
  readonly oid: string;
  readonly critical: boolean;
  /** extnValue's contents. */
  readonly value: Buffer;
}

/** Why an Extensions list is unusable; csr.ts answers it as reason `extensions`. */
export class ExtensionsError extends Error {}

/**
 * Extensions ::= SEQUENCE OF Extension, each exactly { extnID OID, critical BOOLEAN (optional),
 * extnValue OCTET STRING } and each extnID at most once (RFC 5280 4.2). Anything else is an error,
 * never a guess at which element "the" value is.
 */
export function readExtensions(list: Tlv): Extension[] {
  const out: Extension[] = [];
  if (list.tag !== TAG.SEQUENCE) throw new ExtensionsError('Extensions is not a SEQUENCE');
  for (const ext of children(list, 'Extensions')) {
    if (ext.tag !== TAG.SEQUENCE) throw new ExtensionsError('an Extension is not a SEQUENCE');
    const parts = children(ext, 'Extension');
    const [id, second, third] = parts;
    if (id?.tag !== TAG.OID) throw new ExtensionsError('an Extension does not start with its OID');
    const oid = decodeOid(id.value);
    const what = EXTENSION_NAMES.get(oid) ?? oid;
    if (parts.length < 2 || parts.length > 3) {
      throw new ExtensionsError(`extension ${what} has ${parts.length} elements; an Extension is its OID, an optional critical BOOLEAN and one OCTET STRING value`);
    }
    const hasCritical = parts.length === 3;
    const value = hasCritical ? third : second;
    if ((hasCritical && second?.tag !== TAG.BOOLEAN) || value?.tag !== TAG.OCTET_STRING) {
      throw new ExtensionsError(`extension ${what} is not {OID, critical BOOLEAN (optional), OCTET STRING value}`);
    }
    if (hasCritical && (second!.value.length !== 1 || (second!.value[0] !== 0 && second!.value[0] !== 0xff))) {
      throw new ExtensionsError(`extension ${what}: critical is not a DER BOOLEAN`);
    }
    if (out.some((e) => e.oid === oid)) throw new ExtensionsError(`extension ${what} appears twice`);
    out.push({ oid, critical: hasCritical && second!.value[0] === 0xff, value: value.value });
  }
  return out;
}

/**
 * The SANs of the extensionRequest attribute: at most one such attribute, holding one well-formed
 * Extensions list (readExtensions), whose subjectAltName (if any) is one GeneralNames value of at most
 * MAX_SANS names, each URI/DNS/email/IP value in its type's syntax. The other requested extensions are
 * shape-checked and then ignored: the certificate's extensions are certgate's own, never the request's.
 */
function requestedSan(attributes: Tlv | undefined): CsrRequest['san'] {
  const none = { uri: [], dns: [], other: [] };
  if (attributes === undefined) return none;
  let san: Buffer | undefined;
  let seenRequest = false;
  for (const attribute of children(attributes, 'attributes')) {
    expectTag(attribute, TAG.SEQUENCE, 'Attribute');
    const [type, values, extra] = children(attribute, 'Attribute');
    if (type === undefined || values === undefined || extra !== undefined) throw new DerError('Attribute: expected type and values');
    expectTag(type, TAG.OID, 'Attribute type');
    expectTag(values, TAG.SET, 'Attribute values');
    if (decodeOid(type.value) !== EXTENSION_REQUEST) continue; // e.g. challengePassword: not used
    if (seenRequest) throw new Reject('extensions', 'the CSR holds two extensionRequest attributes');
    seenRequest = true;
    const [extensions, extraValue] = children(values, 'extensionRequest');
    if (extensions === undefined || extraValue !== undefined) throw new Reject('extensions', 'extensionRequest must hold exactly one Extensions value');
    let list: Extension[];
    try {
      list = readExtensions(extensions);
    } catch (err) {
      if (err instanceof ExtensionsError || err instanceof DerError) throw new Reject('extensions', `the CSR's extensionRequest is malformed: ${err.message}`);
      throw err;
    }
    san = list.find((e) => e.oid === SUBJECT_ALT_NAME)?.value;
  }
  if (san === undefined) return none;
  let entries: SanEntry[];
  try {
    entries = readSanEntries(san);
  } catch (err) {
    if (err instanceof DerError) throw new Reject('extensions', `the subjectAltName extension is malformed: ${err.message}`);
    throw err;
  }
  if (entries.length > MAX_SANS) throw new Reject('extensions', `the CSR requests ${entries.length} subject alternative names; at most ${MAX_SANS}`);
  const out = { uri: [] as string[], dns: [] as string[], other: [] as string[] };
  for (const e of entries) {
    if (e.kind === 'uri' || e.kind === 'dns' || e.kind === 'email' || e.kind === 'ip') {
      const problem = sanSyntaxProblem(e.kind, e.value);
      if (problem !== undefined) throw new Reject('san_syntax', `SAN ${e.kind === 'email' ? 'email' : e.kind.toUpperCase()} ${JSON.stringify(e.value)} ${problem}`);
    }
    if (e.kind === 'uri') out.uri.push(e.value);
    else if (e.kind === 'dns') out.dns.push(e.value);
    else out.other.push(sanLabel(e));
  }
  return out;
}
