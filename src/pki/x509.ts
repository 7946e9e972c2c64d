/**
 * The only place that builds certificates and CRLs (over @peculiar/x509 and Node's
 * webcrypto; no openssl child process). Everything else in certgate only reads certificates.
 *
 * Names are given as [attribute, value] pairs, least-specific first, exactly as they go into the DER
 * (so OpenSSL prints them reversed: O=x,CN=y → "CN=y,O=x"). Pairs rather than a DN string so that a
 * CN such as `a,O=admin` stays one literal value and can never inject an attribute.
 */
import 'reflect-metadata'; // @peculiar/x509 resolves its algorithms through tsyringe, which needs it first
import * as x509 from '@peculiar/x509';
import { KeyObject, createPrivateKey, randomBytes, webcrypto } from 'node:crypto';
import { CertgateError } from '../errors.js';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

export type KeyType = 'ec' | 'rsa';
export type NameSpec = ReadonlyArray<readonly [attribute: string, value: string]>;
export type Usage = 'server' | 'client';

/** A CA (or any certificate) together with the key that can sign with it. */
export interface Issuer {
  readonly cert: x509.X509Certificate;
  readonly privateKey: CryptoKey;
}
export interface Issued extends Issuer {
  readonly publicKey: CryptoKey;
}

export interface Validity {
  /** Default: 5 minutes ago, so a peer whose clock lags slightly still accepts a fresh certificate. */
  readonly notBefore?: Date;
  /** Default: notBefore + `days`. */
  readonly notAfter?: Date;
  readonly days?: number;
}
export interface SanSpec {
  readonly dns?: readonly string[];
  readonly ip?: readonly string[];
  readonly uri?: readonly string[];
  readonly email?: readonly string[];
}

const DAY_MS = 86_400_000;
const BACKDATE_MS = 5 * 60_000;
const EC_GEN = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const RSA_GEN = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]) } as const;

/** ECDSA P-256 by default (what browsers and curl handle best), RSA-2048 on request. Extractable for PEM export. */
export async function generateKeyPair(type: KeyType = 'ec'): Promise<CryptoKeyPair> {
  return webcrypto.subtle.generateKey(type === 'rsa' ? RSA_GEN : EC_GEN, true, ['sign', 'verify']) as Promise<CryptoKeyPair>;
}

/**
 * 16 random bytes, top bit cleared (a DER INTEGER serial must be positive) and the next bit set (so the
 * encoding never shrinks below 16 bytes): 126 bits of randomness, well above CA/B's 64.
 */
export function randomSerial(): string {
  const b = randomBytes(16);
  b[0] = (b[0]! & 0x7f) | 0x40;
  return b.toString('hex');
}

export function toName(spec: NameSpec): x509.Name {
  // The object form stores the value verbatim as UTF8String; the string form would unescape quotes.
  return new x509.Name(spec.map(([attr, value]) => ({ [attr]: [{ utf8String: value }] })));
}

function window(v: Validity, defaultDays: number): { notBefore: Date; notAfter: Date } {
  const notBefore = v.notBefore ?? new Date(Date.now() - BACKDATE_MS);
  const notAfter = v.notAfter ?? new Date(notBefore.getTime() + (v.days ?? defaultDays) * DAY_MS);
  return { notBefore, notAfter };
}

function signingAlgorithm(key: CryptoKey): EcdsaParams {
  return { name: key.algorithm.name, hash: 'SHA-256' }; // ECDSA or RSASSA-PKCS1-v1_5, always with SHA-256
}

/** Signs with `issuer`, or self-signs with `selfKey` when there is no issuer (a root). */
async function issue(p: {
  subject: x509.Name; publicKey: CryptoKey | x509.PublicKey; issuer: Issuer | { selfKey: CryptoKey };
  validity: { notBefore: Date; notAfter: Date }; extensions: x509.Extension[];
}): Promise<x509.X509Certificate> {
  const issuer = 'cert' in p.issuer ? p.issuer : undefined;
  const signingKey = 'selfKey' in p.issuer ? p.issuer.selfKey : p.issuer.privateKey;
  const extensions = [
    ...p.extensions,
    await x509.SubjectKeyIdentifierExtension.create(p.publicKey),
    ...(issuer ? [await x509.AuthorityKeyIdentifierExtension.create(issuer.cert.publicKey)] : []),
  ];
  return x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: p.subject,
    // The issuer DN is copied from the CA certificate's own DER so chain building matches byte for byte.
    issuer: issuer ? issuer.cert.subjectName : p.subject,
    publicKey: p.publicKey,
    signingKey,
    signingAlgorithm: signingAlgorithm(signingKey),
    ...p.validity,
    extensions,
  });
}

/** A self-signed root when `issuer` is absent, otherwise an intermediate (pathLen 0) signed by it. */
export async function createCa(opts: Validity & { subject: NameSpec; issuer?: Issuer; keyType?: KeyType }): Promise<Issued> {
  const keys = await generateKeyPair(opts.keyType);
  const ku = x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature;
  const cert = await issue({
    subject: toName(opts.subject), publicKey: keys.publicKey, issuer: opts.issuer ?? { selfKey: keys.privateKey },
    validity: window(opts, 3650),
    extensions: [
      new x509.BasicConstraintsExtension(true, opts.issuer ? 0 : undefined, true),
      new x509.KeyUsagesExtension(ku, true),
    ],
  });
  return { cert, privateKey: keys.privateKey, publicKey: keys.publicKey };
}

function sanExtension(san: SanSpec): x509.Extension[] {
  const names: x509.JsonGeneralName[] = [
    ...(san.dns ?? []).map((value) => ({ type: 'dns' as const, value })),
    ...(san.ip ?? []).map((value) => ({ type: 'ip' as const, value })),
    ...(san.uri ?? []).map((value) => ({ type: 'url' as const, value })),
    ...(san.email ?? []).map((value) => ({ type: 'email' as const, value })),
  ];
  return names.length === 0 ? [] : [new x509.SubjectAlternativeNameExtension(names, false)];
}

function leafExtensions(usage: Usage, publicKeyAlg: string, san: SanSpec): x509.Extension[] {
  // RSA key exchange (TLS 1.2 without ECDHE) needs keyEncipherment; an EC key must not carry it.
  const ku = x509.KeyUsageFlags.digitalSignature | (publicKeyAlg === 'ECDSA' ? 0 : x509.KeyUsageFlags.keyEncipherment);
  const eku = usage === 'server' ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth;
  return [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(ku, true),
    new x509.ExtendedKeyUsageExtension([eku], false),
    ...sanExtension(san),
  ];
}

export interface LeafOptions extends Validity {
  readonly issuer: Issuer;
  readonly subject: NameSpec;
  /** server → EKU serverAuth only; client → EKU clientAuth only. */
  readonly usage: Usage;
  readonly san?: SanSpec;
  readonly keyType?: KeyType;
}

/** An end-entity certificate with a fresh key pair. Default validity 825 days (see dev-pki.ts). */
export async function createLeaf(opts: LeafOptions): Promise<Issued> {
  const keys = await generateKeyPair(opts.keyType);
  const cert = await issue({
    subject: toName(opts.subject), publicKey: keys.publicKey, issuer: opts.issuer,
    validity: window(opts, 825),
    extensions: leafExtensions(opts.usage, keys.publicKey.algorithm.name, opts.san ?? {}),
  });
  return { cert, privateKey: keys.privateKey, publicKey: keys.publicKey };
}

/**
 * A client certificate for the key `spki` carrying exactly `subject` and `san`: every extension is
 * certgate's own (basicConstraints CA:FALSE, keyUsage, EKU clientAuth, SAN, key identifiers) and
 * nothing is read from a request. Enrollment and `certs sign` (enroll/build.ts) pass the values they
 * have already parsed and checked once; handing a signer the CSR itself would let a second parser read
 * it another way (issue 13 finding 5). `subject` attributes are short names or dotted OIDs.
 */
export async function createClientCertificate(opts: Validity & { issuer: Issuer; subject: NameSpec; spki: Uint8Array; san: SanSpec }): Promise<x509.X509Certificate> {
  const publicKey = new x509.PublicKey(Uint8Array.from(opts.spki));
  return issue({
    subject: toName(opts.subject), publicKey, issuer: opts.issuer, validity: window(opts, 825),
    extensions: leafExtensions('client', publicKey.algorithm.name, opts.san),
  });
}

export interface CrlEntry {
  /** Hex, any case, as X509Certificate.serialNumber prints it. */
  readonly serial: string;
  readonly revokedAt?: Date;
}

/**
 * A v2 CRL signed by `issuer`. `thisUpdate` defaults to 5 minutes ago; `nextUpdate` to thisUpdate + 30 days.
 * Past a CRL's nextUpdate, Node and OpenSSL refuse *every* client of that CA (CRL_HAS_EXPIRED).
 */
export async function createCrl(opts: {
  issuer: Issuer; entries?: readonly CrlEntry[]; thisUpdate?: Date; nextUpdate?: Date; crlNumber?: bigint;
}): Promise<x509.X509Crl> {
  const thisUpdate = opts.thisUpdate ?? new Date(Date.now() - BACKDATE_MS);
  return x509.X509CrlGenerator.create({
    issuer: opts.issuer.cert.subjectName,
    thisUpdate,
    nextUpdate: opts.nextUpdate ?? new Date(thisUpdate.getTime() + 30 * DAY_MS),
    signingKey: opts.issuer.privateKey,
    signingAlgorithm: signingAlgorithm(opts.issuer.privateKey),
    entries: (opts.entries ?? []).map((e) => ({ serialNumber: e.serial, revocationDate: e.revokedAt ?? thisUpdate })),
    extensions: [
      // RFC 5280 5.2: conforming CRLs carry the CA's key id and a monotonically increasing number.
      await x509.AuthorityKeyIdentifierExtension.create(opts.issuer.cert.publicKey),
      new x509.Extension('2.5.29.20', false, derInteger(opts.crlNumber ?? 1n)),
    ],
  });
}

/** The CRL number extension's value, or 0 when absent. */
export function crlNumberOf(crl: x509.X509Crl): bigint {
  const ext = crl.getExtension('2.5.29.20');
  if (!ext) return 0n;
  const v = new Uint8Array(ext.value);
  return v[0] === 0x02 ? BigInt(`0x${Buffer.from(v.subarray(2, 2 + v[1]!)).toString('hex') || '0'}`) : 0n;
}

function derInteger(n: bigint): Uint8Array<ArrayBuffer> {
  let hex = n.toString(16);
  if (hex.length % 2) hex = `0${hex}`;
  if (Number.parseInt(hex.slice(0, 2), 16) >= 0x80) hex = `00${hex}`;
  const body = Buffer.from(hex, 'hex');
  return Uint8Array.from([0x02, body.length, ...body]);
}

// ---- PEM helpers ----------------------------------------------------------------------------------

export function certToPem(cert: x509.X509Certificate): string {
  return `${x509.PemConverter.encode(cert.rawData, 'CERTIFICATE')}\n`;
}

/** @peculiar/x509 labels CRLs "BEGIN CRL", which Node and OpenSSL reject; "X509 CRL" is the real label. */
export function crlToPem(crl: x509.X509Crl): string {
  return `${x509.PemConverter.encode(crl.rawData, 'X509 CRL')}\n`;
}

/** PKCS#8 PEM; encrypted (AES-256-CBC, as `openssl pkcs8 -topk8 -v2 aes256` does) when a passphrase is given. */
export function keyToPem(key: CryptoKey, passphrase?: string): string {
  const ko = KeyObject.from(key);
  return passphrase === undefined
    ? (ko.export({ type: 'pkcs8', format: 'pem' }) as string)
    : (ko.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase }) as string);
}

/** Loads a PEM private key (any format Node reads) as a webcrypto signing key. */
export async function importSigningKey(pem: string, passphrase?: string): Promise<CryptoKey> {
  const ko = createPrivateKey(passphrase === undefined ? pem : { key: pem, passphrase });
  const der = ko.export({ type: 'pkcs8', format: 'der' });
  const alg = ko.asymmetricKeyType === 'ec'
    ? { name: 'ECDSA', namedCurve: WEB_CURVES[ko.asymmetricKeyDetails?.namedCurve ?? ''] ?? 'unsupported curve' }
    : { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
  return webcrypto.subtle.importKey('pkcs8', der, alg, true, ['sign']) as Promise<CryptoKey>;
}

/** OpenSSL curve names (what Node reports) → webcrypto names. */
const WEB_CURVES: Record<string, string> = { prime256v1: 'P-256', secp384r1: 'P-384', secp521r1: 'P-521' };

export function parseCert(pem: string): x509.X509Certificate {
  return new x509.X509Certificate(pem);
}

/**
 * A CRL as @peculiar/x509 reads it, to carry its entries into the next CRL (dev-pki revoke). certgate
 * itself reads CRLs with x509/crl.ts.
 */
export function crlFromPem(pem: string): x509.X509Crl {
  return new x509.X509Crl(x509.PemConverter.decodeFirst(pem));
}

export { x509 };
