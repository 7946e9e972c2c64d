/**
 * Distinguished Names: DER → the RFC 4514 text that `openssl x509 -noout -subject -nameopt RFC2253`
 * prints, byte for byte, so upstreams (and nginx configs moved to certgate) see the same strings.
 *
 * This is OpenSSL's X509_NAME_print_ex(XN_FLAG_RFC2253) (crypto/asn1/a_strex.c do_name_ex /
 * do_print_ex / do_buf / do_esc_char) re-done over the DER, including its quirks:
 * - the flat AVA list is reversed, so the parts of a multi-valued RDN come out reversed too;
 * - "first character" escaping is decided per character and a one-character value counts only
 *   as "last": a lone `#` is not escaped, a lone space is;
 * - an attribute name OpenSSL does not know prints as its OID, cut to 79 characters, and its value
 *   as `#<DER hex>` whatever the string type.
 * The result is always printable ASCII (every byte >= 0x80 and every control char is `\XX`).
 */
import { children, decodeOid, DerError, expectTag, readOne, TAG } from './der.js';
import type { Tlv } from './der.js';

/** One AttributeTypeAndValue, in DER order, with the index of the RDN (SET) it belongs to. */
export interface Ava {
  readonly oid: string;
  readonly rdn: number;
  readonly value: Tlv;
}

/**
 * Short names exactly as OpenSSL 3.0's object table spells them (`openssl list -objects`), for
 * every attribute arc a DN can use. Anything not here prints as its OID and `#hex`. The unit test
 * puts every entry in one certificate and compares with openssl, so a typo here fails the build.
 */
const NAMES: Readonly<Record<string, string>> = {
  // X.520 (2.5.4.x)
  '2.5.4.3': 'CN', '2.5.4.4': 'SN', '2.5.4.5': 'serialNumber', '2.5.4.6': 'C', '2.5.4.7': 'L',
  '2.5.4.8': 'ST', '2.5.4.9': 'street', '2.5.4.10': 'O', '2.5.4.11': 'OU', '2.5.4.12': 'title',
  '2.5.4.13': 'description', '2.5.4.14': 'searchGuide', '2.5.4.15': 'businessCategory',
  '2.5.4.16': 'postalAddress', '2.5.4.17': 'postalCode', '2.5.4.18': 'postOfficeBox',
  '2.5.4.19': 'physicalDeliveryOfficeName', '2.5.4.20': 'telephoneNumber', '2.5.4.21': 'telexNumber',
  '2.5.4.22': 'teletexTerminalIdentifier', '2.5.4.23': 'facsimileTelephoneNumber',
  '2.5.4.24': 'x121Address', '2.5.4.25': 'internationaliSDNNumber', '2.5.4.26': 'registeredAddress',
  '2.5.4.27': 'destinationIndicator', '2.5.4.28': 'preferredDeliveryMethod',
  '2.5.4.29': 'presentationAddress', '2.5.4.30': 'supportedApplicationContext', '2.5.4.31': 'member',
  '2.5.4.32': 'owner', '2.5.4.33': 'roleOccupant', '2.5.4.34': 'seeAlso', '2.5.4.35': 'userPassword',
  '2.5.4.36': 'userCertificate', '2.5.4.37': 'cACertificate', '2.5.4.38': 'authorityRevocationList',
  '2.5.4.39': 'certificateRevocationList', '2.5.4.40': 'crossCertificatePair', '2.5.4.41': 'name',
  '2.5.4.42': 'GN', '2.5.4.43': 'initials', '2.5.4.44': 'generationQualifier',
  '2.5.4.45': 'x500UniqueIdentifier', '2.5.4.46': 'dnQualifier', '2.5.4.47': 'enhancedSearchGuide',
  '2.5.4.48': 'protocolInformation', '2.5.4.49': 'distinguishedName', '2.5.4.50': 'uniqueMember',
  '2.5.4.51': 'houseIdentifier', '2.5.4.52': 'supportedAlgorithms', '2.5.4.53': 'deltaRevocationList',
  '2.5.4.54': 'dmdName', '2.5.4.65': 'pseudonym', '2.5.4.72': 'role', '2.5.4.97': 'organizationIdentifier',
  '2.5.4.98': 'c3', '2.5.4.99': 'n3', '2.5.4.100': 'dnsName',
  // PKCS #9 attributes (1.2.840.113549.1.9.x)
  '1.2.840.113549.1.9.1': 'emailAddress', '1.2.840.113549.1.9.2': 'unstructuredName',
  '1.2.840.113549.1.9.3': 'contentType', '1.2.840.113549.1.9.4': 'messageDigest',
  '1.2.840.113549.1.9.5': 'signingTime', '1.2.840.113549.1.9.6': 'countersignature',
  '1.2.840.113549.1.9.7': 'challengePassword', '1.2.840.113549.1.9.8': 'unstructuredAddress',
  '1.2.840.113549.1.9.9': 'extendedCertificateAttributes', '1.2.840.113549.1.9.14': 'extReq',
  '1.2.840.113549.1.9.15': 'SMIME-CAPS', '1.2.840.113549.1.9.20': 'friendlyName',
  '1.2.840.113549.1.9.21': 'localKeyID',
  // RFC 4519 / COSINE pilot attributes (0.9.2342.19200300.100.1.x)
  '0.9.2342.19200300.100.1.1': 'UID', '0.9.2342.19200300.100.1.2': 'textEncodedORAddress',
  '0.9.2342.19200300.100.1.3': 'mail', '0.9.2342.19200300.100.1.4': 'info',
  '0.9.2342.19200300.100.1.5': 'favouriteDrink', '0.9.2342.19200300.100.1.6': 'roomNumber',
  '0.9.2342.19200300.100.1.7': 'photo', '0.9.2342.19200300.100.1.8': 'userClass',
  '0.9.2342.19200300.100.1.9': 'host', '0.9.2342.19200300.100.1.10': 'manager',
  '0.9.2342.19200300.100.1.11': 'documentIdentifier', '0.9.2342.19200300.100.1.12': 'documentTitle',
  '0.9.2342.19200300.100.1.13': 'documentVersion', '0.9.2342.19200300.100.1.14': 'documentAuthor',
  '0.9.2342.19200300.100.1.15': 'documentLocation', '0.9.2342.19200300.100.1.20': 'homeTelephoneNumber',
  '0.9.2342.19200300.100.1.21': 'secretary', '0.9.2342.19200300.100.1.22': 'otherMailbox',
  '0.9.2342.19200300.100.1.23': 'lastModifiedTime', '0.9.2342.19200300.100.1.24': 'lastModifiedBy',
  '0.9.2342.19200300.100.1.25': 'DC', '0.9.2342.19200300.100.1.26': 'aRecord',
  '0.9.2342.19200300.100.1.27': 'pilotAttributeType27', '0.9.2342.19200300.100.1.28': 'mXRecord',
  '0.9.2342.19200300.100.1.29': 'nSRecord', '0.9.2342.19200300.100.1.30': 'sOARecord',
  '0.9.2342.19200300.100.1.31': 'cNAMERecord', '0.9.2342.19200300.100.1.37': 'associatedDomain',
  '0.9.2342.19200300.100.1.38': 'associatedName', '0.9.2342.19200300.100.1.39': 'homePostalAddress',
  '0.9.2342.19200300.100.1.40': 'personalTitle', '0.9.2342.19200300.100.1.41': 'mobileTelephoneNumber',
  '0.9.2342.19200300.100.1.42': 'pagerTelephoneNumber', '0.9.2342.19200300.100.1.43': 'friendlyCountryName',
  '0.9.2342.19200300.100.1.44': 'uid', '0.9.2342.19200300.100.1.45': 'organizationalStatus',
  '0.9.2342.19200300.100.1.46': 'janetMailbox', '0.9.2342.19200300.100.1.47': 'mailPreferenceOption',
  '0.9.2342.19200300.100.1.48': 'buildingName', '0.9.2342.19200300.100.1.49': 'dSAQuality',
  '0.9.2342.19200300.100.1.50': 'singleLevelQuality', '0.9.2342.19200300.100.1.51': 'subtreeMinimumQuality',
  '0.9.2342.19200300.100.1.52': 'subtreeMaximumQuality', '0.9.2342.19200300.100.1.53': 'personalSignature',
  '0.9.2342.19200300.100.1.54': 'dITRedirect', '0.9.2342.19200300.100.1.55': 'audio',
  '0.9.2342.19200300.100.1.56': 'documentPublisher',
  // EV jurisdiction (Microsoft arc), RFC 3739 personal data, Russian registration numbers
  '1.3.6.1.4.1.311.60.2.1.1': 'jurisdictionL', '1.3.6.1.4.1.311.60.2.1.2': 'jurisdictionST',
  '1.3.6.1.4.1.311.60.2.1.3': 'jurisdictionC', '1.3.6.1.5.5.7.9.1': 'id-pda-dateOfBirth',
  '1.3.6.1.5.5.7.9.2': 'id-pda-placeOfBirth', '1.3.6.1.5.5.7.9.3': 'id-pda-gender',
  '1.3.6.1.5.5.7.9.4': 'id-pda-countryOfCitizenship', '1.3.6.1.5.5.7.9.5': 'id-pda-countryOfResidence',
  '1.2.643.3.131.1.1': 'INN', '1.2.643.100.1': 'OGRN', '1.2.643.100.3': 'SNILS', '1.2.643.100.5': 'OGRNIP',
};

/** OID → OpenSSL short name, for every attribute type printDn names. */
export const ATTRIBUTE_NAMES: ReadonlyMap<string, string> = new Map(Object.entries(NAMES));

/** OpenSSL prints unknown OIDs into an 80-byte buffer (do_name_ex `objtmp[80]`). */
const OID_TEXT_MAX = 79;

/** Name ::= SEQUENCE OF SET OF AttributeTypeAndValue → the AVAs in DER order. */
export function readName(nameDer: Buffer): Ava[] {
  const name = readOne(nameDer, TAG.SEQUENCE, 'Name');
  const out: Ava[] = [];
  children(name, 'Name').forEach((rdn, index) => {
    expectTag(rdn, TAG.SET, 'RelativeDistinguishedName');
    for (const ava of children(rdn, 'RelativeDistinguishedName')) {
      expectTag(ava, TAG.SEQUENCE, 'AttributeTypeAndValue');
      const [type, value, extra] = children(ava, 'AttributeTypeAndValue');
      if (type === undefined || value === undefined || extra !== undefined) {
        throw new DerError('AttributeTypeAndValue: expected type and value');
      }
      expectTag(type, TAG.OID, 'AttributeType');
      out.push({ oid: decodeOid(type.value), rdn: index, value });
    }
  });
  return out;
}

/** RFC 4514 text of a DER Name, as `openssl x509 -nameopt RFC2253` prints it. */
export function printDn(nameDer: Buffer): string {
  const avas = readName(nameDer).reverse();
  let out = '';
  avas.forEach((ava, i) => {
    if (i > 0) out += ava.rdn === avas[i - 1]?.rdn ? '+' : ',';
    const name = ATTRIBUTE_NAMES.get(ava.oid);
    // do_name_ex: an unknown type is dumped whatever its string type (XN_FLAG_DUMP_UNKNOWN_FIELDS).
    if (name === undefined) out += `${ava.oid.slice(0, OID_TEXT_MAX)}=#${hexUpper(ava.value.raw)}`;
    else out += `${name}=${printValue(ava.value)}`;
  });
  return out;
}

/**
 * How OpenSSL reads each universal string type (a_strex.c tag2nbyte): bytes that are already
 * UTF-8 (UTF8String), one Latin-1 char per byte (converted to UTF-8 before escaping; this is how
 * T61String is treated), UCS-2 (BMPString) or UCS-4 (UniversalString). Any other type is dumped.
 */
type Decoding = 'utf8' | 'latin1' | 'ucs2' | 'ucs4';
const DECODING: ReadonlyMap<number, Decoding> = new Map<number, Decoding>([
  [0x0c, 'utf8'], // UTF8String
  [0x12, 'latin1'], // NumericString
  [0x13, 'latin1'], // PrintableString
  [0x14, 'latin1'], // T61String (TeletexString)
  [0x16, 'latin1'], // IA5String
  [0x17, 'latin1'], // UTCTime
  [0x18, 'latin1'], // GeneralizedTime
  [0x1a, 'latin1'], // VisibleString (ISO646String)
  [0x1c, 'ucs4'], // UniversalString
  [0x1e, 'ucs2'], // BMPString
]);

function printValue(value: Tlv): string {
  const decoding = DECODING.get(value.tag);
  if (decoding === undefined) return `#${hexUpper(value.raw)}`;
  const chars = codeUnits(value.value, decoding);
  let out = '';
  chars.forEach((c, i) => {
    // do_buf: the last character's flag replaces (not joins) the first's, hence "#" alone stays raw.
    const position = i === chars.length - 1 ? 'last' : i === 0 ? 'first' : 'middle';
    for (const byte of decoding === 'utf8' ? [c] : utf8Of(c)) out += escapeByte(byte, position);
  });
  return out;
}

/** The characters OpenSSL iterates over: bytes for UTF-8 and Latin-1, code units otherwise. */
function codeUnits(bytes: Buffer, decoding: Decoding): number[] {
  const width = decoding === 'ucs4' ? 4 : decoding === 'ucs2' ? 2 : 1;
  if (bytes.length % width !== 0) {
    const type = decoding === 'ucs4' ? 'UniversalString' : 'BMPString';
    throw new DerError(`${type} length ${bytes.length} is not a multiple of ${width}`);
  }
  const out: number[] = [];
  for (let i = 0; i < bytes.length; i += width) out.push(bytes.readUIntBE(i, width));
  return out;
}

/** UTF8_putc: surrogates and values past U+10FFFF encode to nothing (OpenSSL skips them too). */
function utf8Of(c: number): number[] {
  if ((c >= 0xd800 && c <= 0xdfff) || c > 0x10ffff) return [];
  return [...Buffer.from(String.fromCodePoint(c), 'utf8')];
}

const BACKSLASHED = new Set([...',+"\\<>;'].map((ch) => ch.charCodeAt(0)));
const SPACE = 0x20;
const HASH = 0x23;

/** do_esc_char with ESC_2253 | ESC_CTRL | ESC_MSB. */
function escapeByte(byte: number, position: 'first' | 'middle' | 'last'): string {
  const ch = String.fromCharCode(byte);
  if (byte > 0x7e || byte < 0x20) return `\\${hexUpper(Buffer.of(byte))}`;
  if (BACKSLASHED.has(byte)) return `\\${ch}`;
  if (position === 'first' && (byte === SPACE || byte === HASH)) return `\\${ch}`;
  if (position === 'last' && byte === SPACE) return `\\${ch}`;
  return ch;
}

function hexUpper(bytes: Buffer): string {
  return bytes.toString('hex').toUpperCase();
}

/**
 * Attribute values decoded to text, keyed by OpenSSL short name (OID when unnamed), each list
 * in DER order: `dnAttributes(subject).get('CN')`. For policy matching, not for headers (the
 * text is raw Unicode). Values whose type is not a character string are left out, so a policy
 * on them fails closed.
 */
export function dnAttributes(nameDer: Buffer): ReadonlyMap<string, readonly string[]> {
  const out = new Map<string, string[]>();
  for (const ava of readName(nameDer)) {
    const text = decodeText(ava.value);
    if (text === undefined) continue;
    const key = ATTRIBUTE_NAMES.get(ava.oid) ?? ava.oid;
    const list = out.get(key);
    if (list === undefined) out.set(key, [text]);
    else list.push(text);
  }
  return out;
}

/** An attribute's value as text, undefined when its type is not a character string (as dnAttributes reads it). */
export function avaText(ava: Ava): string | undefined {
  return decodeText(ava.value);
}

const utf8 = new TextDecoder('utf-8');

function decodeText(value: Tlv): string | undefined {
  const decoding = DECODING.get(value.tag);
  if (decoding === 'utf8') return utf8.decode(value.value);
  if (decoding === 'latin1') return value.value.toString('latin1');
  if (decoding === undefined) return undefined;
  // UTF-16BE by hand: TextDecoder('utf-16be') needs full ICU, which not every Node build has.
  if (decoding === 'ucs2') return codeUnits(value.value, 'ucs2').map((c) => String.fromCharCode(c)).join('');
  return codeUnits(value.value, 'ucs4').map(codePointText).join('');
}

function codePointText(c: number): string {
  return c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff) ? '\uFFFD' : String.fromCodePoint(c);
}
