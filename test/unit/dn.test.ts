/**
 * printDn must print every Name byte for byte as `openssl x509 -noout -subject -nameopt RFC2253`
 * does, because that is the X-Client-Cert-Subject contract (nginx's $ssl_client_s_dn format).
 * The oracle is the real openssl CLI, run on certificates made at test time:
 * - hostile DNs built by `openssl req` itself (what a CA would sign), and
 * - hand-crafted DER for the cases no CLI produces (odd string types, empty RDNs, long OIDs).
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { readCertificate } from '../../dist/x509/der.js';
import { ATTRIBUTE_NAMES, dnAttributes, printDn } from '../../dist/x509/dn.js';
import { ava, CertLab, craftCertificate, name, rdn, subj, tlv, utf16be } from '../helpers/openssl.js';
import type { OpensslFields } from '../helpers/openssl.js';

type Rdns = ReadonlyArray<ReadonlyArray<readonly [string, string]>>;

interface RequestCase {
  readonly title: string;
  /** RDNs in DER order (most general first), as `-subj` takes them. */
  readonly rdns: Rdns;
  readonly mask?: string;
  /** The CN values dnAttributes must decode (defaults to the CN values given). */
  readonly cn?: readonly string[];
}

const CN = (value: string): Rdns => [[['O', 'Example']], [['CN', value]]];

const REQUEST_CASES: readonly RequestCase[] = [
  { title: 'a comma trying to add an RDN', rdns: [[['C', 'DE']], [['O', 'Example, Inc.']], [['CN', 'alice,O=admin']]] },
  { title: 'a plus trying to add an AVA', rdns: CN('a+UID=0') },
  { title: 'double quotes', rdns: CN('say "hi"') },
  { title: 'semicolon, angle brackets and backslash', rdns: CN(';<x>\\y\\') },
  { title: 'a leading #', rdns: CN('#hash') },
  { title: 'a lone #', rdns: CN('#') },
  { title: 'a # not in front', rdns: CN('a#b#') },
  { title: 'a leading space', rdns: CN(' lead') },
  { title: 'a trailing space', rdns: CN('trail ') },
  { title: 'a lone space', rdns: CN(' ') },
  { title: 'inner spaces', rdns: CN('a  b') },
  { title: 'equals signs', rdns: CN('a=b=c') },
  { title: 'UTF-8 (2, 3 and 4 byte sequences)', rdns: CN('Jürgen 日本 🙂') },
  { title: 'a newline', rdns: CN('line1\nline2') },
  { title: 'control characters and DEL', rdns: CN('\t\x01a\x1f\x7f') },
  { title: 'a carriage return at the end', rdns: CN('x\r') },
  { title: 'a multi-valued RDN', rdns: [[['O', 'Example']], [['CN', 'svc-a'], ['UID', '42']]] },
  { title: 'a three-valued RDN', rdns: [[['CN', 'a'], ['OU', 'b'], ['L', 'c']], [['C', 'FR']]] },
  { title: 'repeated attribute types', rdns: [[['OU', 'x']], [['OU', 'y,z']], [['CN', 'n']], [['CN', 'm']]] },
  {
    title: 'DC, UID, emailAddress, serialNumber and friends',
    rdns: [[['DC', 'org']], [['DC', 'example']], [['C', 'US']], [['ST', 'CA']], [['L', 'SF']], [['street', '1 Main St']],
      [['postalCode', '94000']], [['O', 'Org']], [['OU', 'Unit']], [['title', 'Dr']], [['description', 'a; b']],
      [['GN', 'Ada']], [['SN', 'Lovelace']], [['initials', 'AL']], [['pseudonym', 'al']], [['serialNumber', '1234']],
      [['UID', 'u-1']], [['emailAddress', 'ada@example.org']], [['CN', 'Ada Lovelace']]],
  },
  { title: 'an attribute OID openssl does not know', rdns: [[['certgateTestAttr', 'value']], [['CN', 'x']]] },
  { title: 'BMPString values', rdns: [[['O', 'a,b']], [['CN', 'Jürgen 日本 #']]], mask: 'MASK:0x800' },
  { title: 'T61String values (Latin-1 in DER)', rdns: [[['O', 'Société']], [['CN', 'Jürgen']]], mask: 'default' },
  { title: 'UniversalString values', rdns: [[['O', ' é']], [['CN', 'é🙂 ']]], mask: 'MASK:0x100' },
];

let lab: CertLab;
const issued = new Map<string, { der: Buffer; printed: OpensslFields }>();

before(async () => {
  lab = CertLab.create();
  const ca = await lab.request({ subj: subj([[['O', 'CA "Root", #1']], [['CN', ' \\Issuer+Ω ']]]), ext: ['basicConstraints = critical,CA:TRUE'] });
  const jobs = REQUEST_CASES.map(async (c) => {
    const file = await lab.request({ subj: subj(c.rdns), ...(c.mask !== undefined && { mask: c.mask }) });
    issued.set(c.title, { der: new X509Certificate(fs.readFileSync(file)).raw, printed: await lab.print(file) });
  });
  jobs.push((async () => {
    const file = await lab.request({ subj: subj([[['CN', 'leaf']]]), caCert: ca });
    issued.set('issued by a hostile CA', { der: new X509Certificate(fs.readFileSync(file)).raw, printed: await lab.print(file) });
  })());
  await Promise.all(jobs);
});

after(() => lab.remove());

describe('printDn against openssl -nameopt RFC2253 (certificates made by openssl req)', () => {
  for (const c of [...REQUEST_CASES, { title: 'issued by a hostile CA', rdns: [] }]) {
    test(c.title, () => {
      const cert = issued.get(c.title);
      assert.ok(cert, 'certificate was generated');
      const parts = readCertificate(cert.der);
      assert.equal(printDn(parts.subject), cert.printed.subject);
      assert.equal(printDn(parts.issuer), cert.printed.issuer);
    });
  }

  test('the hostile issuer really differs from the subject and is escaped', () => {
    const cert = issued.get('issued by a hostile CA');
    assert.ok(cert);
    assert.equal(cert.printed.subject, 'CN=leaf');
    assert.equal(printDn(readCertificate(cert.der).issuer), 'CN=\\ \\\\Issuer\\+\\CE\\A9\\ ,O=CA \\"Root\\"\\, #1');
  });

  test('known outputs (documented examples)', () => {
    const der = (title: string): Buffer => readCertificate(issued.get(title)?.der ?? Buffer.alloc(0)).subject;
    assert.equal(printDn(der('a multi-valued RDN')), 'UID=42+CN=svc-a,O=Example');
    assert.equal(printDn(der('a comma trying to add an RDN')), 'CN=alice\\,O=admin,O=Example\\, Inc.,C=DE');
    assert.equal(printDn(der('a lone #')), 'CN=#,O=Example');
    assert.equal(printDn(der('a newline')), 'CN=line1\\0Aline2,O=Example');
  });

  test('every output is printable ASCII', () => {
    for (const { der } of issued.values()) {
      const parts = readCertificate(der);
      for (const dn of [printDn(parts.subject), printDn(parts.issuer)]) assert.match(dn, /^[\x20-\x7e]*$/);
    }
  });
});

describe('dnAttributes decodes values for policy matching', () => {
  for (const c of REQUEST_CASES) {
    const expected = c.cn ?? c.rdns.flat().filter(([t]) => t === 'CN').map(([, v]) => v);
    test(`CN of: ${c.title}`, () => {
      const cert = issued.get(c.title);
      assert.ok(cert);
      assert.deepEqual(dnAttributes(readCertificate(cert.der).subject).get('CN') ?? [], expected);
    });
  }

  test('keys are short names (OID when unnamed), values in DER order', () => {
    const cert = issued.get('repeated attribute types');
    assert.ok(cert);
    const attrs = dnAttributes(readCertificate(cert.der).subject);
    assert.deepEqual([...attrs.entries()], [['OU', ['x', 'y,z']], ['CN', ['n', 'm']]]);
    const unknown = issued.get('an attribute OID openssl does not know');
    assert.ok(unknown);
    assert.deepEqual(dnAttributes(readCertificate(unknown.der).subject).get('1.3.6.1.4.1.99999.1'), ['value']);
  });

  test('values that are not character strings are left out', () => {
    const der = name(rdn(ava('2.5.4.3', 0x04, 'octets')), rdn(ava('2.5.4.3', 0x0c, 'text')));
    assert.deepEqual(dnAttributes(der).get('CN'), ['text']);
  });
});

const UTF8 = 0x0c;
const PRINTABLE = 0x13;
const IA5 = 0x16;
const BMP = 0x1e;
const UNIVERSAL = 0x1c;
const CN_OID = '2.5.4.3';

function ucs4(codePoints: readonly number[]): Buffer {
  const b = Buffer.alloc(codePoints.length * 4);
  codePoints.forEach((c, i) => b.writeUInt32BE(c, i * 4));
  return b;
}

/** Names no CLI makes. openssl decides: it prints them, or refuses the certificate. */
const CRAFTED: ReadonlyArray<readonly [string, Buffer]> = [
  ['every named attribute type', name(...[...ATTRIBUTE_NAMES.keys()].map((o) => rdn(ava(o, UTF8, '12'))))],
  ['GeneralString, VideotexString, GraphicString values (dumped)', name(rdn(ava(CN_OID, 0x1b, 'gs')), rdn(ava(CN_OID, 0x15, 'vt')), rdn(ava(CN_OID, 0x19, 'gr')))],
  ['a SEQUENCE value (dumped whole)', name(rdn(ava(CN_OID, 0x30, tlv(0x0c, Buffer.from('in')))))],
  ['an ObjectDescriptor value', name(rdn(ava(CN_OID, 0x07, 'od')))],
  ['an OCTET STRING value', name(rdn(ava(CN_OID, 0x04, 'os')))],
  ['a BIT STRING value', name(rdn(ava(CN_OID, 0x03, Buffer.from([0, 0xa5]))))],
  ['a T61String with bytes >= 0x80', name(rdn(ava(CN_OID, 0x14, Buffer.from([0x23, 0xfc, 0xa0, 0x20]))))],
  ['a UTCTime value', name(rdn(ava(CN_OID, 0x17, '260101000000Z')))],
  ['an empty RDN between two', name(rdn(ava(CN_OID, UTF8, 'a')), rdn(), rdn(ava('2.5.4.10', UTF8, 'b')))],
  ['an empty value', name(rdn(ava(CN_OID, UTF8, '')))],
  ['an empty Name', name()],
  ['a PrintableString holding a Latin-1 byte', name(rdn(ava(CN_OID, PRINTABLE, Buffer.from([0x41, 0xe9, 0x20]))))],
  ['an IA5String with controls', name(rdn(ava(CN_OID, IA5, '\x00a\x1b[0m\n')))],
  ['VisibleString and NumericString', name(rdn(ava(CN_OID, 0x1a, ' v ')), rdn(ava(CN_OID, 0x12, '1 2')))],
  ['BMPString of one #, one space, leading # and space', name(rdn(ava(CN_OID, BMP, utf16be('#'))), rdn(ava(CN_OID, BMP, utf16be(' '))), rdn(ava(CN_OID, BMP, utf16be('# x '))))],
  ['BMPString with a surrogate pair', name(rdn(ava(CN_OID, BMP, utf16be('a🙂'))))],
  ['BMPString of odd length', name(rdn(ava(CN_OID, BMP, Buffer.from([0, 0x41, 0]))))],
  ['UniversalString beyond U+10FFFF', name(rdn(ava(CN_OID, UNIVERSAL, ucs4([0x41, 0x110000]))))],
  ['UTF8String that is not UTF-8', name(rdn(ava(CN_OID, UTF8, Buffer.from([0x61, 0xff, 0x62]))))],
  ['UTF8String with an overlong encoding', name(rdn(ava(CN_OID, UTF8, Buffer.from([0xc0, 0xaf]))))],
  ['an unknown OID with a PrintableString', name(rdn(ava('1.2.3.4', PRINTABLE, 'v')))],
  ['a UUID OID (2.25.x, 128-bit arc)', name(rdn(ava('2.25.329800735698586629295641978511506172918', UTF8, 'u')))],
  ['an OID longer than 79 characters', name(rdn(ava(`1.3.6.1.4.1.${Array.from({ length: 30 }, (_, i) => i + 100).join('.')}`, UTF8, 'l')))],
  ['a multi-valued RDN with an unknown OID', name(rdn(ava(CN_OID, UTF8, 'a'), ava('1.2.3.4', UTF8, 'b'), ava('2.5.4.11', UTF8, 'c')))],
];

describe('printDn against openssl on hand-crafted names', () => {
  const printed = new Map<string, { der: Buffer; fields: OpensslFields | undefined }>();
  before(async () => {
    await Promise.all(CRAFTED.map(async ([title, subject]) => {
      const issuer = name(rdn(ava(CN_OID, UTF8, 'crafted issuer')));
      const der = craftCertificate(lab.key, { subject, issuer });
      printed.set(title, { der, fields: await lab.printDer(der) });
    }));
  });

  for (const [title, subject] of CRAFTED) {
    test(title, (t) => {
      const result = printed.get(title);
      assert.ok(result);
      if (result.fields === undefined) {
        // OpenSSL refuses the whole certificate, so no TLS handshake can present it; Node's
        // parser (the same OpenSSL) must refuse it too, or certgate could meet it.
        t.diagnostic('openssl refuses this certificate');
        assert.throws(() => new X509Certificate(result.der));
        return;
      }
      assert.equal(printDn(subject), result.fields.subject);
      assert.equal(printDn(readCertificate(result.der).issuer), result.fields.issuer);
    });
  }

  test('the attribute table test really printed names, not OIDs', () => {
    const fields = printed.get('every named attribute type')?.fields;
    assert.ok(fields);
    assert.match(fields.subject ?? '', /^OGRNIP=12,SNILS=12,OGRN=12,INN=12,/);
    assert.doesNotMatch(fields.subject ?? '', /=#/);
  });

  test('unprintable types are dumped as uppercase DER hex', () => {
    const der = name(rdn(ava(CN_OID, 0x1b, 'gs')));
    assert.equal(printDn(der), 'CN=#1B026773');
  });
});
