/**
 * readCsr (enroll/csr.ts): a request body → subject, SANs, key, verified signature — or a named refusal.
 * CSRs come from the real `openssl req` (what clients run) and, for the shapes no CLI makes (a second
 * SAN extension, an otherName SAN, trailing bytes, a SHA-1 signature), from DER built by hand and
 * validly signed. A refusal must never be a throw: the handler turns each reason into a 400.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createPublicKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readCsr, type CsrResult } from '../../dist/enroll/csr.js';
import { ava, name, oid, openssl, rdn, sanExtension, tlv } from '../helpers/openssl.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'certgate-csr-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));
const noOpenssl = spawnSync('openssl', ['version']).status === 0 ? undefined : 'openssl is not installed';

let n = 0;
/** `openssl req -new` with a fresh key; returns the CSR file's bytes. */
async function opensslCsr(opts: { newkey?: string[]; subj?: string; san?: string; der?: boolean }): Promise<Buffer> {
  const out = path.join(dir, `r${++n}.csr`);
  await openssl(['req', '-new', ...(opts.newkey ?? ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256']), '-nodes',
    '-keyout', path.join(dir, `r${n}.key`), '-subj', opts.subj ?? '/CN=svc-b', ...(opts.san ? ['-addext', `subjectAltName=${opts.san}`] : []),
    ...(opts.der ? ['-outform', 'DER'] : []), '-out', out]);
  return fs.readFileSync(out);
}

const ECDSA_SHA256 = '1.2.840.10045.4.3.2';
const ECDSA_SHA1 = '1.2.840.10045.4.1';
const CN = '2.5.4.3';
const OU = '2.5.4.11';
const O = '2.5.4.10';
const ec = (): KeyObject => generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;

/** A PKCS#10 request built by hand and signed by `key`. */
function craftCsr(key: KeyObject, o: { subject?: Buffer; extensions?: Buffer[][]; hash?: string; alg?: string; trailing?: Buffer } = {}): Buffer {
  const spki = createPublicKey(key).export({ type: 'spki', format: 'der' });
  const attrs = (o.extensions ?? []).map((exts) => tlv(0x30, oid('1.2.840.113549.1.9.14'), tlv(0x31, tlv(0x30, ...exts))));
  const info = tlv(0x30, tlv(0x02, [0]), o.subject ?? name(rdn(ava(CN, 0x0c, 'svc-b'))), spki, tlv(0xa0, ...attrs));
  const signature = sign(o.hash ?? 'sha256', info, key);
  return Buffer.concat([tlv(0x30, info, tlv(0x30, oid(o.alg ?? ECDSA_SHA256)), tlv(0x03, [0], signature)), o.trailing ?? Buffer.alloc(0)]);
}

function ok(r: CsrResult) {
  assert.ok(r.ok, r.ok ? '' : `${r.reason}: ${r.message}`);
  return r.csr;
}
function refused(r: CsrResult, reason: string, message?: RegExp): void {
  assert.equal(r.ok, false, 'must be refused');
  if (r.ok) return;
  assert.equal(r.reason, reason, r.message);
  if (message) assert.match(r.message, message);
}

test('openssl P-256 CSR, PEM and DER: subject, SANs and key read; DER and PEM agree', { skip: noOpenssl }, async () => {
  const pem = await opensslCsr({ subj: '/OU=payments/CN=svc-b', san: 'URI:spiffe://example.org/ns/prod/sa/svc-b,DNS:svc-b.internal' });
  const csr = ok(readCsr(pem));
  assert.deepEqual(csr.attributes.get('CN'), ['svc-b']);
  assert.deepEqual(csr.attributes.get('OU'), ['payments']);
  assert.deepEqual(csr.san, { uri: ['spiffe://example.org/ns/prod/sa/svc-b'], dns: ['svc-b.internal'], other: [] });
  assert.equal(csr.key, 'ECDSA P-256');
  assert.equal(csr.multiValuedRdn, false);
  assert.equal(csr.nonTextAttribute, false);
  assert.deepEqual(ok(readCsr(csr.der)).san, csr.san, 'DER body reads the same');
  assert.equal('pem' in csr, false, 'no PEM of the request to hand a second parser (issue 13 finding 5)');
});

test('accepted keys: P-384 and RSA-2048; refused: RSA-1024 (key_size), P-521 and Ed25519 (key_type)', { skip: noOpenssl }, async () => {
  assert.equal(ok(readCsr(await opensslCsr({ newkey: ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-384'] }))).key, 'ECDSA P-384');
  assert.equal(ok(readCsr(await opensslCsr({ newkey: ['-newkey', 'rsa:2048'] }))).key, 'RSA 2048');
  refused(readCsr(await opensslCsr({ newkey: ['-newkey', 'rsa:1024'] })), 'key_size', /RSA-1024 is too small/);
  refused(readCsr(await opensslCsr({ newkey: ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-521'] })), 'key_type', /secp521r1/);
  refused(readCsr(await opensslCsr({ newkey: ['-newkey', 'ed25519'] })), 'key_type', /ed25519/);
});

test('tampered CSR: one byte of the subject changed after signing → signature', { skip: noOpenssl }, async () => {
  const der = await opensslCsr({ subj: '/CN=svc-b', der: true });
  const i = der.indexOf('svc-b');
  der[i] = 'S'.charCodeAt(0);
  refused(readCsr(der), 'signature', /does not verify/);
});

test('bodies that are not one CSR: garbage, a certificate PEM, two CSRs, trailing bytes, truncated DER', () => {
  refused(readCsr(Buffer.from('hello')), 'not_a_csr');
  refused(readCsr(Buffer.from('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n')), 'not_a_csr', /no "-----BEGIN CERTIFICATE REQUEST-----"/);
  const one = craftCsr(ec());
  const pem = `-----BEGIN CERTIFICATE REQUEST-----\n${one.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
  assert.ok(readCsr(Buffer.from(pem)).ok);
  assert.ok(readCsr(Buffer.from(pem.replaceAll('CERTIFICATE REQUEST', 'NEW CERTIFICATE REQUEST'))).ok, 'old NEW CERTIFICATE REQUEST label');
  refused(readCsr(Buffer.from(pem + pem)), 'not_a_csr', /more than one/);
  refused(readCsr(craftCsr(ec(), { trailing: Buffer.from([0, 0]) })), 'not_a_csr', /trailing/);
  refused(readCsr(one.subarray(0, one.length - 5)), 'not_a_csr');
});

test('SHA-1 signature is refused (signature_algorithm), even when it verifies', () => {
  refused(readCsr(craftCsr(ec(), { hash: 'sha1', alg: ECDSA_SHA1 })), 'signature_algorithm');
});

test('SAN kinds other than URI/DNS are reported by name, never skipped', () => {
  const key = ec();
  const otherName = tlv(0x30, oid('1.3.6.1.4.1.311.20.2.3'), tlv(0xa0, tlv(0x0c, Buffer.from('admin@corp'))));
  const csr = ok(readCsr(craftCsr(key, {
    extensions: [[sanExtension([[0x86, 'spiffe://x/a'], [0x81, 'a@b.c'], [0x87, Buffer.from([10, 0, 0, 1])], [0xa0, otherName.subarray(2)]])]],
  })));
  assert.deepEqual(csr.san.uri, ['spiffe://x/a']);
  assert.deepEqual([...csr.san.other].sort(), ['IP:10.0.0.1', 'email:a@b.c', 'othername:1.3.6.1.4.1.311.20.2.3']);
});

test('two SAN extensions, or two extensionRequest attributes: refused (which one would be "the" SAN?)', () => {
  const san = sanExtension([[0x86, 'spiffe://x/a']]);
  refused(readCsr(craftCsr(ec(), { extensions: [[san, sanExtension([[0x86, 'spiffe://x/admin']])]] })), 'extensions', /twice/);
  refused(readCsr(craftCsr(ec(), { extensions: [[san], [san]]})), 'extensions', /two extensionRequest/);
});

test('subject shape is reported: extra attributes, multi-valued RDN, non-text value', () => {
  const csr = ok(readCsr(craftCsr(ec(), { subject: name(rdn(ava(O, 0x0c, 'evil')), rdn(ava(CN, 0x0c, 'svc-b'), ava(OU, 0x0c, 'x')), rdn(ava(OU, 0x04, 'raw'))) })));
  assert.deepEqual([...csr.attributes.keys()].sort(), ['CN', 'O', 'OU']);
  assert.equal(csr.multiValuedRdn, true);
  assert.equal(csr.nonTextAttribute, true, 'an OCTET STRING value is not text');
});
