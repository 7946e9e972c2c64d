/**
 * Issue 13 finding 5, the pure checks: enrollment issued names its token never granted.
 * - readCsr (csr.ts) is the one parse of a request: an Extension with two extnValues (the smuggled
 *   SAN), a duplicated or malformed extension, a mis-tagged GeneralName → `extensions`; a SAN value
 *   outside its type's syntax (NUL, CR LF, space, "_", misplaced "*") → `san_syntax`.
 * - sanSyntaxProblem (san.ts): DNS LDH labels, RFC 3986 URIs, dot-atom mailboxes, 4/16-octet IPs.
 * - identityMismatches (match.ts): a wildcard is a grant's pattern, never a certificate's value.
 * - issuedMismatches (issued.ts): the self-check compares every SAN of every type, the subject, the
 *   key and the exact extension list of the built certificate with the grant.
 * CSRs and certificates come from the test's own DER writer (helpers/csr.ts, helpers/openssl.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate, generateKeyPairSync } from 'node:crypto';
import { MAX_SANS, readCsr, type CsrResult } from '../../dist/enroll/csr.js';
import { sanSyntaxProblem } from '../../dist/enroll/san.js';
import { identityMismatches, type Grant } from '../../dist/enroll/match.js';
import { issuedMismatches, issuedSanLabels, type Granted } from '../../dist/enroll/issued.js';
import { createCa, createClientCertificate } from '../../dist/pki/x509.js';
import { OID, craftCsr, critical, ecKey, extension, extensionRequest, generalNames, gn, octets, san, smuggledSan } from '../helpers/csr.js';
import { ava, craftCertificate, name, rdn, tlv } from '../helpers/openssl.js';

function refused(r: CsrResult, reason: string, message?: RegExp): void {
  assert.equal(r.ok, false, 'must be refused');
  if (r.ok) return;
  assert.equal(r.reason, reason, r.message);
  if (message) assert.match(r.message, message);
}
const withExtensions = (...exts: Buffer[]): Buffer => craftCsr(ecKey(), { attributes: [extensionRequest(...exts)] });
const GRANTED_URI = 'spiffe://example.org/ns/prod/sa/svc-b';

test('smuggled SAN: a SAN Extension with two extnValues (hidden otherName UPN + DirName, either order, with or without critical) → extensions', () => {
  const hidden = generalNames(gn.upn('administrator@corp.example'), gn.dirName('admin'), gn.uri(GRANTED_URI));
  const shown = generalNames(gn.uri(GRANTED_URI));
  refused(readCsr(withExtensions(smuggledSan(hidden, shown))), 'extensions', /subjectAltName is not \{OID, critical BOOLEAN \(optional\), OCTET STRING value\}/);
  refused(readCsr(withExtensions(smuggledSan(shown, hidden))), 'extensions', /subjectAltName is not \{OID, critical BOOLEAN \(optional\), OCTET STRING value\}/);
  refused(readCsr(withExtensions(extension(OID.SAN, critical(), octets(hidden), octets(shown)))), 'extensions', /4 elements/);
  refused(readCsr(withExtensions(extension(OID.SAN))), 'extensions', /1 elements/);
});

test('duplicated extension: two SANs, two basicConstraints, two extensionRequest attributes → extensions', () => {
  const uri = san(gn.uri(GRANTED_URI));
  refused(readCsr(withExtensions(uri, san(gn.upn('administrator@corp.example')))), 'extensions', /subjectAltName appears twice/);
  const bc = extension(OID.BASIC_CONSTRAINTS, critical(), octets(Buffer.from([0x30, 0])));
  refused(readCsr(withExtensions(uri, bc, bc)), 'extensions', /basicConstraints appears twice/);
  refused(readCsr(craftCsr(ecKey(), { attributes: [extensionRequest(uri), extensionRequest(san(gn.dirName('admin')))] })), 'extensions', /two extensionRequest/);
});

test('malformed extension: critical not a DER BOOLEAN, extnValue not an OCTET STRING, Extensions not a SEQUENCE → extensions', () => {
  const names = octets(generalNames(gn.uri(GRANTED_URI)));
  refused(readCsr(withExtensions(extension(OID.SAN, tlv(0x02, [1]), names))), 'extensions');
  refused(readCsr(withExtensions(extension(OID.SAN, tlv(0x01, [0x01]), names))), 'extensions', /not a DER BOOLEAN/);
  refused(readCsr(withExtensions(extension(OID.SAN, generalNames(gn.uri(GRANTED_URI))))), 'extensions');
  const asSet = tlv(0x30, Buffer.from([0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x0e]), tlv(0x31, tlv(0x31, san(gn.uri(GRANTED_URI)))));
  refused(readCsr(craftCsr(ecKey(), { attributes: [asSet] })), 'extensions', /not a SEQUENCE/);
});

test('malformed SAN value: trailing GeneralNames, empty GeneralNames, a constructed (BER) dNSName → extensions', () => {
  refused(readCsr(withExtensions(extension(OID.SAN, octets(Buffer.concat([generalNames(gn.uri(GRANTED_URI)), generalNames(gn.dirName('admin'))]))))), 'extensions', /trailing/);
  refused(readCsr(withExtensions(extension(OID.SAN, octets(generalNames())))), 'extensions', /empty/);
  refused(readCsr(withExtensions(san(tlv(0xa2, tlv(0x16, Buffer.from('a.example.com')))))), 'extensions', /mis-tagged/);
});

test(`more than ${MAX_SANS} SANs → extensions; ${MAX_SANS} are read`, () => {
  const names = (n: number): Buffer[] => Array.from({ length: n }, (_, i) => gn.dns(`h${i}.example.com`));
  refused(readCsr(withExtensions(san(...names(MAX_SANS + 1)))), 'extensions', new RegExp(`${MAX_SANS + 1} subject alternative names`));
  const r = readCsr(withExtensions(san(...names(MAX_SANS))));
  assert.ok(r.ok && r.csr.san.dns.length === MAX_SANS);
});

test('control characters in SANs: DNS with NUL or CR LF, URI with CR LF or space, email with NUL → san_syntax', () => {
  refused(readCsr(withExtensions(san(gn.dns('admin\0.example.com')))), 'san_syntax', /SAN DNS "admin\\u0000.example.com"/);
  refused(readCsr(withExtensions(san(gn.dns('x\r\ny.example.com')))), 'san_syntax', /SAN DNS "x\\r\\ny.example.com"/);
  refused(readCsr(withExtensions(san(gn.uri(`${GRANTED_URI}\r\nx-admin: 1`)))), 'san_syntax', /SAN URI/);
  refused(readCsr(withExtensions(san(gn.uri('spiffe://example.org/a b')))), 'san_syntax');
  refused(readCsr(withExtensions(san(gn.email('a\0@example.com')))), 'san_syntax', /SAN email/);
});

test('extensions a CSR requests besides the SAN (CA:TRUE, keyUsage, an unknown critical one) are shape-checked, then ignored', () => {
  const r = readCsr(withExtensions(san(gn.uri(GRANTED_URI)),
    extension(OID.BASIC_CONSTRAINTS, critical(), octets(Buffer.from([0x30, 3, 1, 1, 0xff]))),
    extension('1.3.6.1.4.1.99999.7', critical(), octets(Buffer.from([0x05, 0])))));
  assert.ok(r.ok, r.ok ? '' : r.message);
  assert.deepEqual(r.csr.san, { uri: [GRANTED_URI], dns: [], other: [] });
});

test('sanSyntaxProblem DNS: LDH labels only; "*" only as the whole first label', () => {
  for (const good of ['a.example.com', 'svc-b.internal', 'localhost', 'A1-b.X', '1.example.com', '*.example.com', `${'a'.repeat(63)}.example.com`]) {
    assert.equal(sanSyntaxProblem('dns', good), undefined, good);
  }
  for (const bad of ['admin\0.example.com', 'x\r\ny.example.com', 'a b.example.com', 'a_b.example.com', '-a.example.com', 'a-.example.com',
    'a..example.com', 'example.com.', '', '*', '*x.example.com', 'a.*.example.com', '*.*.example.com', 'é.example.com', `${'a'.repeat(64)}.example.com`,
    `${'a.'.repeat(127)}ab`, 'a\t.example.com', 'a\x7f.example.com']) {
    assert.notEqual(sanSyntaxProblem('dns', bad), undefined, JSON.stringify(bad));
  }
});

test('sanSyntaxProblem URI / email / IP: RFC 3986 characters with a scheme; dot-atom@host; 4 or 16 octets', () => {
  for (const good of [GRANTED_URI, 'urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66', 'https://x.example/a%20b?q=1#f', 'spiffe://example.org/ns/*/x']) {
    assert.equal(sanSyntaxProblem('uri', good), undefined, good);
  }
  for (const bad of ['spiffe://example.org/a b', 'spiffe://example.org/a\r\nb', 'spiffe://example.org/\0', 'spiffe://example.org/é', 'spiffe://x/%zz',
    'spiffe://x/%4', '//example.org/a', 'example.org/a', 'spiffe://x/"a"', 'spiffe://x/<a>', 'spiffe://x/a\\b', '']) {
    assert.notEqual(sanSyntaxProblem('uri', bad), undefined, JSON.stringify(bad));
  }
  assert.equal(sanSyntaxProblem('email', 'svc.b+x@example.com'), undefined);
  for (const bad of ['svc@', '@example.com', 'a b@example.com', 'a@b@c', 'a\0@example.com', 'a@*.example.com', 'a@exa mple.com']) {
    assert.notEqual(sanSyntaxProblem('email', bad), undefined, JSON.stringify(bad));
  }
  assert.equal(sanSyntaxProblem('ip', '10.0.0.1'), undefined);
  assert.notEqual(sanSyntaxProblem('ip', '#0a0000'), undefined);
  assert.notEqual(sanSyntaxProblem('otherName', '1.3.6.1.4.1.311.20.2.3'), undefined);
});

test('wildcard values are never granted: DNS "*.svc.internal" under a "*.svc.internal" grant, URI "…/jobs/*" under "…/jobs/**"', () => {
  const grant: Grant = { cn: 'svc-b', san_uri: ['spiffe://example.org/jobs/**'], san_dns: ['*.svc.internal'] };
  const req = (uri: string[], dns: string[]) => ({ attributes: new Map([['CN', ['svc-b']]]), nonTextAttribute: false, multiValuedRdn: false, san: { uri, dns, other: [] } });
  assert.match(identityMismatches(grant, req([], ['*.svc.internal'])).join(), /SAN DNS "\*\.svc\.internal" is a wildcard/);
  assert.match(identityMismatches(grant, req(['spiffe://example.org/jobs/*'], [])).join(), /"\*" or "\*\*" path segment/);
  assert.match(identityMismatches(grant, req(['spiffe://example.org/jobs/a/**'], [])).join(), /path segment/);
  assert.deepEqual(identityMismatches(grant, req(['spiffe://example.org/jobs/a'], ['x.svc.internal'])), []);
});

// ---- the self-check of the issued certificate -------------------------------------------------------

const CLIENT_AUTH_EKU = Buffer.from([0x30, 0x0a, 0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02]);
const ext = {
  bc: (der = [0x30, 0]) => extension(OID.BASIC_CONSTRAINTS, critical(), octets(Buffer.from(der))),
  ku: (bits = 0x80) => extension(OID.KEY_USAGE, critical(), octets(Buffer.from([0x03, 2, 0, bits]))),
  eku: () => extension(OID.EKU, octets(CLIENT_AUTH_EKU)),
  ski: () => extension('2.5.29.14', octets(Buffer.from([0x04, 1, 0xaa]))),
  aki: () => extension('2.5.29.35', octets(Buffer.from([0x30, 3, 0x80, 1, 0xaa]))),
};
const BASE = (): Buffer[] => [ext.bc(), ext.ku(), ext.eku(), ext.ski(), ext.aki()];

/** A certificate with `extensions` (default: certgate's set + a SAN with the granted URI) and the Granted it must match. */
function crafted(o: { extensions?: Buffer[]; subject?: Buffer } = {}): { der: Buffer; granted: Granted } {
  const der = craftCertificate(ecKey(), {
    subject: o.subject ?? name(rdn(ava(OID.CN, 0x0c, 'svc-b'))), issuer: name(rdn(ava(OID.CN, 0x0c, 'ca'))),
    extensions: o.extensions ?? [...BASE(), san(gn.uri(GRANTED_URI))],
  });
  const spki = new X509Certificate(der).publicKey.export({ type: 'spki', format: 'der' });
  return { der, granted: { subject: [['CN', 'svc-b']], san: { uri: [GRANTED_URI], dns: [] }, spki } };
}

test('self-check: a certificate with exactly the grant passes; createClientCertificate (P-256 and RSA keys) passes', async () => {
  const good = crafted();
  assert.deepEqual(issuedMismatches(good.der, good.granted), []);
  const ca = await createCa({ subject: [['CN', 'unit CA']] });
  for (const key of [generateKeyPairSync('ec', { namedCurve: 'P-256' }), generateKeyPairSync('rsa', { modulusLength: 2048 })]) {
    const spki = key.publicKey.export({ type: 'spki', format: 'der' });
    const granted: Granted = { subject: [['OU', 'payments'], ['CN', 'svc-b']], san: { uri: [GRANTED_URI], dns: ['svc-b.internal'] }, spki };
    const cert = await createClientCertificate({ issuer: ca, subject: granted.subject, spki, san: granted.san });
    const der = Buffer.from(cert.rawData);
    assert.deepEqual(issuedMismatches(der, granted), [], key.publicKey.asymmetricKeyType);
    assert.deepEqual(issuedSanLabels(der), ['DNS:svc-b.internal', `URI:${GRANTED_URI}`]);
  }
});

test('self-check: an otherName UPN or a DirName next to the granted URI fails it, naming every SAN of every type', () => {
  for (const [extra, label] of [[gn.upn('administrator@corp.example'), 'othername:1.3.6.1.4.1.311.20.2.3'], [gn.dirName('admin'), 'DirName:CN=admin'],
    [gn.email('admin@corp.example'), 'email:admin@corp.example'], [gn.ip([10, 0, 0, 1]), 'IP:10.0.0.1'], [gn.dns('admin.example.com'), 'DNS:admin.example.com']] as const) {
    const c = crafted({ extensions: [...BASE(), san(extra, gn.uri(GRANTED_URI))] });
    const problems = issuedMismatches(c.der, c.granted).join('\n');
    assert.ok(problems.includes(label), `${label}: ${problems}`);
    assert.ok(issuedSanLabels(c.der).includes(label));
  }
  const none = crafted({ extensions: BASE() });
  assert.match(issuedMismatches(none.der, none.granted).join(), /lacks extensions: 2\.5\.29\.17/);
});

test('self-check: a duplicated SAN, a foreign extension, CA:TRUE, keyCertSign, another subject or key each fail it', () => {
  const uri = san(gn.uri(GRANTED_URI));
  const check = (o: Parameters<typeof crafted>[0], re: RegExp): void => {
    const c = crafted(o);
    assert.match(issuedMismatches(c.der, c.granted).join('\n'), re);
  };
  check({ extensions: [...BASE(), uri, san(gn.upn('administrator@corp.example'))] }, /does not parse: .*subjectAltName appears twice/);
  check({ extensions: [...BASE(), uri, extension('2.5.29.30', octets(Buffer.from([0x30, 0])))] }, /extensions certgate does not issue: 2\.5\.29\.30/);
  check({ extensions: [ext.bc([0x30, 3, 1, 1, 0xff]), ext.ku(), ext.eku(), ext.ski(), ext.aki(), uri] }, /CA:FALSE/);
  check({ extensions: [ext.bc(), ext.ku(0x84), ext.eku(), ext.ski(), ext.aki(), uri] }, /keyUsage/);
  check({ subject: name(rdn(ava('2.5.4.10', 0x0c, 'admins')), rdn(ava(OID.CN, 0x0c, 'svc-b'))) }, /subject/);
  check({ subject: name(rdn(ava(OID.CN, 0x0c, 'svc-b'), ava(OID.OU, 0x0c, 'x'))) }, /subject/);
  const c = crafted();
  assert.match(issuedMismatches(c.der, { ...c.granted, spki: crafted().granted.spki }).join(), /another key/);
});
