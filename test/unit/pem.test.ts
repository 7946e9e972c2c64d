import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { classifyLabel, describeBlock, looksLikeDer, parsePem, toPem } from '../../dist/x509/pem.js';
import { createCa, certToPem } from '../../dist/pki/x509.js';

const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const pkcs8 = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
const sec1 = privateKey.export({ type: 'sec1', format: 'pem' }) as string;
const encPkcs8 = privateKey.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'pw' }) as string;
const encSec1 = privateKey.export({ type: 'sec1', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'pw' }) as string;
const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs1', format: 'pem' }) as string;

test('classifies keys, certificates, CRLs and unknown labels', () => {
  assert.equal(classifyLabel('PRIVATE KEY'), 'key');
  assert.equal(classifyLabel('EC PRIVATE KEY'), 'key');
  assert.equal(classifyLabel('RSA PRIVATE KEY'), 'key');
  assert.equal(classifyLabel('ENCRYPTED PRIVATE KEY'), 'key');
  assert.equal(classifyLabel('CERTIFICATE'), 'certificate');
  assert.equal(classifyLabel('TRUSTED CERTIFICATE'), 'certificate');
  assert.equal(classifyLabel('X509 CRL'), 'crl');
  assert.equal(classifyLabel('CERTIFICATE REQUEST'), 'unknown');
  assert.equal(classifyLabel('PUBLIC KEY'), 'unknown');
});

test('splits a bundle into numbered blocks with kinds, lines and encryption flags', async () => {
  const ca = await createCa({ subject: [['CN', 'PEM Test CA']] });
  const certPem = certToPem(ca.cert);
  const text = `${encSec1}${certPem}${encPkcs8}${pkcs8}${rsa}`;
  const blocks = parsePem(text);
  assert.deepEqual(blocks.map((b) => [b.index, b.label, b.kind, b.encrypted]), [
    [1, 'EC PRIVATE KEY', 'key', true],
    [2, 'CERTIFICATE', 'certificate', false],
    [3, 'ENCRYPTED PRIVATE KEY', 'key', true],
    [4, 'PRIVATE KEY', 'key', false],
    [5, 'RSA PRIVATE KEY', 'key', false],
  ]);
  assert.equal(blocks[0]!.line, 1);
  assert.equal(blocks[1]!.line, encSec1.split('\n').length); // the line after the key's END line
  assert.deepEqual(blocks[0]!.headers.map(([k]) => k), ['Proc-Type', 'DEK-Info']);
  assert.ok(blocks.every((b) => b.error === undefined));
  // The decoded certificate is the real DER.
  assert.equal(new X509Certificate(blocks[1]!.der).subject, 'CN=PEM Test CA');
  assert.equal(describeBlock(blocks[1]!), 'CERTIFICATE (block 2)');
});

test('tolerates CRLF, leading openssl text, indentation and trailing blanks', async () => {
  const ca = await createCa({ subject: [['CN', 'CRLF CA']] });
  const certPem = certToPem(ca.cert);
  const messy = `subject=CN = CRLF CA\r\nissuer=CN = CRLF CA\r\n\r\n${certPem.split('\n').map((l) => `  ${l}  `).join('\r\n')}\r\nBag Attributes\r\n${sec1.replace(/\n/g, '\r\n')}\r\n\r\n`;
  const blocks = parsePem(Buffer.from(messy));
  assert.deepEqual(blocks.map((b) => b.label), ['CERTIFICATE', 'EC PRIVATE KEY']);
  assert.equal(blocks[0]!.line, 4);
  // Re-emitted canonically, and equal to the clean export.
  assert.equal(blocks[0]!.pem, certPem);
  assert.equal(blocks[1]!.pem, sec1);
});

test('keeps RFC 1421 headers of traditional encrypted keys in the re-emitted PEM', () => {
  const [b] = parsePem(encSec1.replace(/\n/g, '\r\n'));
  assert.ok(b);
  assert.equal(b.encrypted, true);
  assert.equal(b.pem, encSec1);
});

test('reports malformed blocks instead of throwing', () => {
  const body = pkcs8.split('\n').slice(1, -2).join('\n');
  const unterminated = parsePem(`-----BEGIN PRIVATE KEY-----\n${body}\n`);
  assert.equal(unterminated.length, 1);
  assert.match(unterminated[0]!.error ?? '', /no "-----END PRIVATE KEY-----" line/);

  const mismatched = parsePem(`-----BEGIN PRIVATE KEY-----\n${body}\n-----END CERTIFICATE-----\n`);
  assert.match(mismatched[0]!.error ?? '', /ends with "-----END CERTIFICATE-----"/);

  const badBase64 = parsePem('-----BEGIN CERTIFICATE-----\nnot*base64!\n-----END CERTIFICATE-----\n');
  assert.match(badBase64[0]!.error ?? '', /not valid base64/);
  assert.equal(badBase64[0]!.pem, '');

  const empty = parsePem('-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n');
  assert.match(empty[0]!.error ?? '', /empty/);

  // A BEGIN inside an open block closes the first as broken and still finds the second.
  const two = parsePem(`-----BEGIN CERTIFICATE-----\nAAAA\n${pkcs8}`);
  assert.deepEqual(two.map((b) => [b.index, b.label, b.error === undefined]), [[1, 'CERTIFICATE', false], [2, 'PRIVATE KEY', true]]);
});

test('text without blocks yields no blocks; DER is recognised', async () => {
  assert.deepEqual(parsePem('hello\nworld\n'), []);
  assert.deepEqual(parsePem(''), []);
  const ca = await createCa({ subject: [['CN', 'DER CA']] });
  const der = Buffer.from(ca.cert.rawData);
  assert.equal(looksLikeDer(der), true);
  assert.equal(looksLikeDer(Buffer.from(certToPem(ca.cert))), false);
});

test('re-labels "BEGIN CRL" (what @peculiar/x509 writes) as "X509 CRL", which OpenSSL reads', () => {
  const der = Buffer.from([0x30, 0x03, 0x02, 0x01, 0x01]);
  const [b] = parsePem(toPem('CRL', der));
  assert.ok(b);
  assert.equal(b.kind, 'crl');
  assert.match(b.pem, /^-----BEGIN X509 CRL-----\n/);
  assert.match(b.pem, /-----END X509 CRL-----\n$/);
});
