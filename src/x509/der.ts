/**
 * A minimal DER reader: just enough of X.690 to read what certgate needs out of a certificate's
 * DER (`X509Certificate.raw`: names, SANs, validity, extensions, serial), a CRL and a CSR.
 *
 * Why hand-written: Node exposes no RFC 4514 subject and its `subjectAltName` string quotes
 * values with commas; @peculiar/x509 prints names differently from OpenSSL (DEPENDENCIES.md §3).
 *
 * Every read is bounds-checked against the enclosing element, and every loop advances by at
 * least the two header octets, so malformed input throws a DerError and can never read out of
 * range or spin.
 */

/** Thrown for any input that is not the DER this module expects. */
export class DerError extends Error {
  constructor(message: string) {
    super(`malformed DER: ${message}`);
    this.name = 'DerError';
  }
}

/** Identifier octets this module names (class | constructed | number). */
export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  OCTET_STRING: 0x04,
  OID: 0x06,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

/** One element: identifier octet, contents, and the whole encoding (for `#hex` dumps). */
export interface Tlv {
  /** The identifier octet (tag numbers >= 31 are rejected, nothing in a certificate uses them). */
  readonly tag: number;
  /** Contents octets (a view into the input, not a copy). */
  readonly value: Buffer;
  /** Identifier + length + contents (a view into the input). */
  readonly raw: Buffer;
}

const CONSTRUCTED = 0x20;
/** Lengths need at most 4 octets here: a certificate larger than 4 GiB is not a certificate. */
const MAX_LENGTH_OCTETS = 4;

function describe(what: string, offset: number): string {
  return `${what} (at offset ${offset})`;
}

/** Reads the element starting at `offset`; it must end within `buf`. */
export function readTlv(buf: Buffer, offset: number, what: string): Tlv {
  if (offset + 2 > buf.length) throw new DerError(`${describe(what, offset)}: truncated header`);
  const tag = buf[offset] as number;
  if ((tag & 0x1f) === 0x1f) throw new DerError(`${describe(what, offset)}: high tag number form not supported`);
  const first = buf[offset + 1] as number;
  let length: number;
  let header = 2;
  if (first < 0x80) {
    length = first;
  } else {
    const n = first & 0x7f;
    // 0x80 is BER's indefinite length, never valid in DER.
    if (n === 0) throw new DerError(`${describe(what, offset)}: indefinite length`);
    if (n > MAX_LENGTH_OCTETS) throw new DerError(`${describe(what, offset)}: length of ${n} octets is too long`);
    if (offset + 2 + n > buf.length) throw new DerError(`${describe(what, offset)}: truncated length`);
    length = 0;
    for (let i = 0; i < n; i++) length = length * 256 + (buf[offset + 2 + i] as number);
    header += n;
  }
  const end = offset + header + length;
  if (end > buf.length) {
    throw new DerError(`${describe(what, offset)}: length ${length} runs past the end of its container`);
  }
  return { tag, value: buf.subarray(offset + header, end), raw: buf.subarray(offset, end) };
}

/** Splits `buf` into the consecutive elements that exactly fill it. */
export function readAll(buf: Buffer, what: string): Tlv[] {
  const out: Tlv[] = [];
  let offset = 0;
  while (offset < buf.length) {
    const tlv = readTlv(buf, offset, what);
    out.push(tlv);
    offset += tlv.raw.length; // always >= 2, so this terminates
  }
  return out;
}

/** The single element that `buf` holds, checked against the expected identifier. */
export function readOne(buf: Buffer, tag: number, what: string): Tlv {
  const tlv = readTlv(buf, 0, what);
  expectTag(tlv, tag, what);
  if (tlv.raw.length !== buf.length) throw new DerError(`${what}: ${buf.length - tlv.raw.length} trailing bytes`);
  return tlv;
}

export function expectTag(tlv: Tlv, tag: number, what: string): void {
  if (tlv.tag !== tag) {
    throw new DerError(`${what}: expected tag 0x${hex2(tag)}, found 0x${hex2(tlv.tag)}`);
  }
}

/** The elements inside a constructed element. */
export function children(tlv: Tlv, what: string): Tlv[] {
  if ((tlv.tag & CONSTRUCTED) === 0) throw new DerError(`${what}: expected a constructed element`);
  return readAll(tlv.value, what);
}

function hex2(n: number): string {
  return n.toString(16).padStart(2, '0');
}

/**
 * Dotted-decimal text of an OBJECT IDENTIFIER's contents. BigInt because UUID OIDs
 * (2.25.<128-bit>) exist and must print exactly, as OpenSSL prints them.
 */
export function decodeOid(value: Buffer): string {
  if (value.length === 0) throw new DerError('OBJECT IDENTIFIER: empty');
  const arcs: bigint[] = [];
  let acc = 0n;
  let start = true;
  for (const byte of value) {
    // A sub-identifier may not start with 0x80 (non-minimal); OpenSSL rejects it too.
    if (start && byte === 0x80) throw new DerError('OBJECT IDENTIFIER: non-minimal sub-identifier');
    acc = (acc << 7n) | BigInt(byte & 0x7f);
    start = (byte & 0x80) === 0;
    if (start) {
      arcs.push(acc);
      acc = 0n;
    }
  }
  if (!start) throw new DerError('OBJECT IDENTIFIER: truncated sub-identifier');
  const first = arcs[0] as bigint;
  const head = first < 40n ? [0n, first] : first < 80n ? [1n, first - 40n] : [2n, first - 80n];
  return [...head, ...arcs.slice(1)].join('.');
}

/** The parts of a certificate that identity needs, as views into the DER. */
export interface CertificateParts {
  /** The issuer Name element (SEQUENCE), whole encoding. */
  readonly issuer: Buffer;
  /** The subject Name element (SEQUENCE), whole encoding. */
  readonly subject: Buffer;
  /** The SubjectAltName extension's extnValue contents (GeneralNames DER), if present. */
  readonly subjectAltName?: Buffer;
}

const SAN_OID = '2.5.29.17';
const EXTENSIONS_TAG = 0xa3; // [3] EXPLICIT
const VERSION_TAG = 0xa0; // [0] EXPLICIT

/**
 * Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signature }
 * TBSCertificate ::= SEQUENCE { [0] version OPTIONAL, serial, signature, issuer, validity,
 *                               subject, subjectPublicKeyInfo, [1], [2], [3] extensions OPTIONAL }
 * `base` is 1 when the optional version is present: field n of the list above is fields[base + n - 1].
 */
function tbsFields(der: Buffer): { fields: Tlv[]; base: number } {
  const cert = readOne(der, TAG.SEQUENCE, 'Certificate');
  const [tbs] = children(cert, 'Certificate');
  if (tbs === undefined) throw new DerError('Certificate: empty');
  expectTag(tbs, TAG.SEQUENCE, 'TBSCertificate');
  const fields = children(tbs, 'TBSCertificate');
  return { fields, base: fields[0]?.tag === VERSION_TAG ? 1 : 0 };
}

export function readCertificate(der: Buffer): CertificateParts {
  const { fields, base } = tbsFields(der);
  const issuer = fields[base + 2];
  const subject = fields[base + 4];
  if (issuer === undefined || subject === undefined || fields[base + 5] === undefined) {
    throw new DerError('TBSCertificate: too few fields');
  }
  expectTag(issuer, TAG.SEQUENCE, 'issuer Name');
  expectTag(subject, TAG.SEQUENCE, 'subject Name');
  const extensions = fields.slice(base + 6).find((f) => f.tag === EXTENSIONS_TAG);
  const san = extensions === undefined ? undefined : findExtension(extensions, SAN_OID);
  return { issuer: issuer.raw, subject: subject.raw, ...(san !== undefined && { subjectAltName: san }) };
}

/** The serialNumber INTEGER's contents (the two's-complement bytes as encoded). */
export function readSerial(der: Buffer): Buffer {
  const { fields, base } = tbsFields(der);
  const serial = fields[base];
  if (serial === undefined) throw new DerError('TBSCertificate: no serialNumber');
  expectTag(serial, TAG.INTEGER, 'serialNumber');
  return serial.value;
}

/** Validity ::= SEQUENCE { notBefore Time, notAfter Time }, in ms since the epoch. */
export function readValidity(der: Buffer): { notBefore: number; notAfter: number } {
  const { fields, base } = tbsFields(der);
  const validity = fields[base + 3];
  if (validity === undefined) throw new DerError('TBSCertificate: no validity');
  expectTag(validity, TAG.SEQUENCE, 'Validity');
  const [from, to, extra] = children(validity, 'Validity');
  if (from === undefined || to === undefined || extra !== undefined) throw new DerError('Validity: wrong shape');
  return { notBefore: readTime(from), notAfter: readTime(to) };
}

/**
 * The extnValue contents of the certificate's extension `oid`, or undefined. Should it repeat (RFC 5280
 * forbids it), the first counts: for the CA flag, key usage and key ids, as other X.509 readers do. The
 * SAN, which names the identity, is stricter (readCertificate refuses two).
 */
export function readCertificateExtension(der: Buffer, oid: string): Buffer | undefined {
  const { fields, base } = tbsFields(der);
  const explicit = fields.slice(base + 6).find((f) => f.tag === EXTENSIONS_TAG);
  if (explicit === undefined) return undefined;
  const [list] = children(explicit, 'extensions');
  if (list === undefined) throw new DerError('extensions: empty [3]');
  expectTag(list, TAG.SEQUENCE, 'Extensions');
  for (const ext of children(list, 'Extensions')) {
    const parts = children(ext, 'Extension');
    const id = parts[0];
    const value = parts[parts.length - 1];
    if (id?.tag !== TAG.OID || decodeOid(id.value) !== oid) continue;
    if (value === undefined || parts.length > 3) throw new DerError('Extension: wrong shape');
    expectTag(value, TAG.OCTET_STRING, 'Extension.extnValue');
    return value.value;
  }
  return undefined;
}

const UTC_TIME = 0x17;
const GENERALIZED_TIME = 0x18;

/** Whether `tlv` is a Time (UTCTime or GeneralizedTime). */
export function isTime(tlv: Tlv | undefined): boolean {
  return tlv?.tag === UTC_TIME || tlv?.tag === GENERALIZED_TIME;
}

/** UTCTime (YYMMDDHHMMSSZ, YY < 50 → 20YY, RFC 5280 4.1.2.5.1) or GeneralizedTime, to ms. */
export function readTime(t: Tlv): number {
  const s = t.value.toString('latin1');
  const m = t.tag === UTC_TIME ? /^(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)Z$/.exec(s)
    : t.tag === GENERALIZED_TIME ? /^(\d{4})(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(?:\.\d+)?Z$/.exec(s) : null;
  if (m === null) throw new DerError(`time "${s}" is not a UTC time`);
  const n = m.slice(1).map(Number) as [number, number, number, number, number, number];
  const year = t.tag === UTC_TIME ? (n[0] < 50 ? 2000 + n[0] : 1900 + n[0]) : n[0];
  return Date.UTC(year, n[1] - 1, n[2], n[3], n[4], n[5]);
}

/** INTEGER contents as unsigned bytes in upper-case hex, leading zeros dropped: a 00 sign byte or its absence compares equal. */
export function unsignedHex(bytes: Buffer): string {
  let i = 0;
  while (i < bytes.length - 1 && bytes[i] === 0) i++;
  return bytes.toString('hex', i).toUpperCase();
}

/** Extension ::= SEQUENCE { extnID OID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING } */
function findExtension(explicit: Tlv, oid: string): Buffer | undefined {
  const [list] = children(explicit, 'extensions');
  if (list === undefined) throw new DerError('extensions: empty [3]');
  expectTag(list, TAG.SEQUENCE, 'Extensions');
  let found: Buffer | undefined;
  for (const ext of children(list, 'Extensions')) {
    expectTag(ext, TAG.SEQUENCE, 'Extension');
    const parts = children(ext, 'Extension');
    const id = parts[0];
    const value = parts[parts.length - 1];
    if (id === undefined || value === undefined || parts.length > 3) throw new DerError('Extension: wrong shape');
    expectTag(id, TAG.OID, 'Extension.extnID');
    if (decodeOid(id.value) !== oid) continue;
    expectTag(value, TAG.OCTET_STRING, 'Extension.extnValue');
    // RFC 5280 4.2: at most one instance of an extension; two SANs would make "the" SAN ambiguous.
    if (found !== undefined) throw new DerError(`Extension ${oid} appears twice`);
    found = value.value;
  }
  return found;
}

/** The GeneralName kinds identity uses; everything else is skipped (but still bounds-checked). */
export interface GeneralNames {
  readonly uri: string[];
  readonly dns: string[];
  readonly email: string[];
  readonly ip: string[];
}

const GN_EMAIL = 0x81; // [1] rfc822Name IA5String, implicit primitive
const GN_DNS = 0x82; // [2] dNSName
const GN_URI = 0x86; // [6] uniformResourceIdentifier
const GN_IP = 0x87; // [7] iPAddress OCTET STRING

/** GeneralNames ::= SEQUENCE SIZE (1..MAX) OF GeneralName, in certificate order. */
export function readGeneralNames(der: Buffer): GeneralNames {
  const seq = readOne(der, TAG.SEQUENCE, 'GeneralNames');
  const out: GeneralNames = { uri: [], dns: [], email: [], ip: [] };
  for (const gn of children(seq, 'GeneralNames')) {
    if (gn.tag === GN_URI) out.uri.push(ia5Text(gn.value, 'uniformResourceIdentifier'));
    else if (gn.tag === GN_DNS) out.dns.push(ia5Text(gn.value, 'dNSName'));
    else if (gn.tag === GN_EMAIL) out.email.push(ia5Text(gn.value, 'rfc822Name'));
    else if (gn.tag === GN_IP) out.ip.push(ipText(gn.value));
    else if ((gn.tag & 0xc0) !== 0x80) throw new DerError(`GeneralName: unexpected tag 0x${hex2(gn.tag)}`);
  }
  return out;
}

const utf8Strict = new TextDecoder('utf-8', { fatal: true });

/**
 * IA5String is ASCII by definition, but CAs do put UTF-8 (IRIs) in URI SANs and OpenSSL does
 * not check. Valid UTF-8 is kept as text (that decoding is one-to-one, so policy matching on the
 * text is matching on the bytes). Anything else is refused, as Go's crypto/x509 refuses any
 * non-ASCII here: a lossy or Latin-1 reading would let two different SANs compare equal.
 */
function ia5Text(value: Buffer, what: string): string {
  try {
    return utf8Strict.decode(value);
  } catch {
    throw new DerError(`${what}: neither ASCII nor UTF-8`);
  }
}

/** iPAddress: 4 octets (IPv4) or 16 (IPv6). Other lengths are not an address: `#<hex>`. */
export function ipText(value: Buffer): string {
  if (value.length === 4) return [...value].join('.');
  if (value.length === 16) return ipv6Text(value);
  // Only name constraints use address+mask forms; never an address, so never matches a config IP.
  return `#${value.toString('hex')}`;
}

/**
 * RFC 5952 text, as libuv inet_ntop (and so net.SocketAddress) prints it; Node's own
 * `subjectAltName` uses OpenSSL's uppercase long form instead, nothing to match against:
 * lowercase, the longest run (>= 2) of zero groups as `::` (first one on a tie), and
 * IPv4-mapped / IPv4-compatible addresses with a dotted tail.
 */
function ipv6Text(b: Buffer): string {
  const words = Array.from({ length: 8 }, (_, i) => b.readUInt16BE(i * 2));
  let best = { base: -1, len: 0 };
  let cur = { base: -1, len: 0 };
  words.forEach((w, i) => {
    if (w === 0) {
      cur = cur.base === -1 ? { base: i, len: 1 } : { base: cur.base, len: cur.len + 1 };
      if (cur.len > best.len) best = cur;
    } else {
      cur = { base: -1, len: 0 };
    }
  });
  if (best.len < 2) best = { base: -1, len: 0 };
  const dottedTail = best.base === 0 && (best.len === 6 || (best.len === 5 && words[5] === 0xffff));
  let out = '';
  for (let i = 0; i < 8; i++) {
    if (i >= best.base && i < best.base + best.len) {
      if (i === best.base) out += ':';
      continue;
    }
    if (i !== 0) out += ':';
    if (i === 6 && dottedTail) return out + [...b.subarray(12)].join('.');
    out += (words[i] as number).toString(16);
  }
  if (best.base !== -1 && best.base + best.len === 8) out += ':';
  return out;
}
