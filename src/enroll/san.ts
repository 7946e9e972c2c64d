/**
 * Subject alternative names for enrollment, typed: reading every GeneralName of a GeneralNames value
 * (of a CSR, and of the certificate issued for it) and the syntax each requested value must have
 * before it is compared with a token's grant. Pure.
 *
 * Why a syntax check before the grant: a grant pattern such as `*.example.com` stands for "one label",
 * and a label is whatever sits between dots, so without it `admin\0.example.com` or `x\r\ny.example.com`
 * matched. Values are read as one character per byte (latin1) and then must be printable ASCII of their
 * type's grammar, so no byte can be read two ways.
 */
import { DerError, TAG, children, decodeOid, expectTag, ipText, readOne, readTlv } from '../x509/der.js';
import { printDn } from '../x509/dn.js';

export type SanKind = 'dns' | 'uri' | 'email' | 'ip' | 'otherName' | 'x400Address' | 'directoryName' | 'ediPartyName' | 'registeredID';

export interface SanEntry {
  readonly kind: SanKind;
  /** The value as text: dns/uri/email byte for byte, ip as an address, the other kinds as a description. */
  readonly value: string;
}

/** GeneralName CHOICE tags (RFC 5280 4.2.1.6): implicit, so the primitive/constructed bit is fixed per kind. */
const KINDS: ReadonlyMap<number, SanKind> = new Map([
  [0xa0, 'otherName'], [0x81, 'email'], [0x82, 'dns'], [0xa3, 'x400Address'], [0xa4, 'directoryName'],
  [0xa5, 'ediPartyName'], [0x86, 'uri'], [0x87, 'ip'], [0x88, 'registeredID'],
]);

/**
 * Every GeneralName of a GeneralNames DER value, in order. Throws DerError on anything that is not
 * GeneralNames exactly: trailing bytes, an empty list (SIZE 1..MAX), an unknown or mis-tagged kind.
 */
export function readSanEntries(der: Buffer): SanEntry[] {
  const names = children(readOne(der, TAG.SEQUENCE, 'GeneralNames'), 'GeneralNames');
  if (names.length === 0) throw new DerError('GeneralNames: empty (RFC 5280: at least one name)');
  return names.map((gn): SanEntry => {
    const kind = KINDS.get(gn.tag);
    if (kind === undefined) throw new DerError(`GeneralName: unknown or mis-tagged kind 0x${gn.tag.toString(16)}`);
    switch (kind) {
      case 'dns': case 'uri': case 'email': return { kind, value: gn.value.toString('latin1') };
      case 'ip': return { kind, value: ipText(gn.value) };
      case 'otherName': return { kind, value: otherNameType(gn.value) };
      case 'directoryName': return { kind, value: dirName(gn.value) };
      default: return { kind, value: `#${gn.value.toString('hex')}` };
    }
  });
}

function otherNameType(value: Buffer): string {
  try {
    const first = readTlv(value, 0, 'otherName type-id');
    expectTag(first, TAG.OID, 'otherName type-id');
    return decodeOid(first.value);
  } catch {
    return `#${value.toString('hex')}`;
  }
}

function dirName(value: Buffer): string {
  try {
    return printDn(value);
  } catch {
    return `#${value.toString('hex')}`;
  }
}

/** As OpenSSL prints a SAN ("DNS:", "URI:", "email:", "IP Address:" shortened to "IP:"): for logs and messages. */
export function sanLabel(e: SanEntry): string {
  const prefix: Record<SanKind, string> = {
    dns: 'DNS', uri: 'URI', email: 'email', ip: 'IP', otherName: 'othername', x400Address: 'X400Name',
    directoryName: 'DirName', ediPartyName: 'EdiPartyName', registeredID: 'RID',
  };
  return `${prefix[e.kind]}:${e.value}`;
}

/** RFC 1035/1123 preferred name syntax label: letters, digits, hyphens; no hyphen at either end; 1-63. */
const LDH_LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
/** RFC 3986 characters: unreserved, gen-delims, sub-delims and "%" (checked for two hex digits below). */
const URI_CHARS = /^[A-Za-z0-9\-._~:/?#[\]@!$&'()*+,;=%]+$/;
const URI_SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*:/;
const BAD_PERCENT = /%(?![0-9A-Fa-f]{2})/;
/** RFC 5321 dot-atom local part (no quoted strings: a mailbox here is an identity, not an address to deliver to). */
const EMAIL_LOCAL = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$/;

/**
 * Why `value` is not a valid `kind` SAN, or undefined when it is. dns: host name in LDH labels, a
 * `*` only as the whole first label (whether a wildcard is granted is match.ts's decision); uri: an
 * RFC 3986 URI with a scheme, ASCII only, no space or control, well-formed %XX; email: dot-atom@host;
 * ip: 4 or 16 octets. The other kinds have no text syntax certgate accepts.
 */
export function sanSyntaxProblem(kind: SanKind, value: string): string | undefined {
  switch (kind) {
    case 'dns': return dnsProblem(value);
    case 'uri':
      if (!URI_CHARS.test(value)) return 'holds a character a URI cannot (RFC 3986: ASCII letters, digits and -._~:/?#[]@!$&\'()*+,;=% only; no space or control)';
      if (!URI_SCHEME.test(value)) return 'has no scheme (e.g. spiffe://)';
      if (BAD_PERCENT.test(value)) return 'has a "%" not followed by two hex digits';
      return undefined;
    case 'email': {
      const at = value.lastIndexOf('@');
      if (at <= 0 || !EMAIL_LOCAL.test(value.slice(0, at))) return 'is not a mailbox (local@host, ASCII dot-atom local part)';
      const host = value.slice(at + 1);
      return host.includes('*') ? 'has a wildcard host' : dnsProblem(host);
    }
    case 'ip': return value.startsWith('#') ? 'is not 4 (IPv4) or 16 (IPv6) octets' : undefined;
    default: return 'is not a kind of name certgate issues';
  }
}

function dnsProblem(name: string): string | undefined {
  if (name.length === 0) return 'is empty';
  if (name.length > 253) return 'is longer than 253 characters';
  const labels = name.split('.');
  for (const [i, label] of labels.entries()) {
    if (i === 0 && label === '*' && labels.length > 1) continue;
    if (!LDH_LABEL.test(label)) {
      return label.includes('*')
        ? 'has a "*" that is not the whole first label'
        : `has the label ${JSON.stringify(label)}: host name labels are 1-63 ASCII letters, digits and inner hyphens (no NUL, control, space, "_" or empty label)`;
    }
  }
  return undefined;
}
