/**
 * x509/crl.ts signatureScheme: the signature AlgorithmIdentifier of a CRL → what node:crypto's verify()
 * takes, for RSASSA-PSS read from its parameters (RFC 4055 3.1: defaults sha1, MGF1-sha1, salt 20,
 * trailer 1). A parameter set verify() cannot honour is named, never verified some other way: a
 * different salt length or hash would be a different signature scheme. The CRLs openssl makes with
 * these parameters are verified end to end in test/e2e/crl-openssl.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { signatureScheme } from '../../dist/x509/crl.js';
import { readTlv } from '../../dist/x509/der.js';

const tlv = (tag: number, ...parts: Buffer[]): Buffer => {
  const body = Buffer.concat(parts);
  assert.ok(body.length < 128);
  return Buffer.concat([Buffer.from([tag, body.length]), body]);
};
const oid = (hex: string): Buffer => tlv(0x06, Buffer.from(hex, 'hex'));
const int = (n: number): Buffer => tlv(0x02, Buffer.from([n]));
const NULL = Buffer.from([0x05, 0x00]);
const PSS = oid('2a864886f70d01010a'); // 1.2.840.113549.1.1.10
const MGF1 = oid('2a864886f70d010108');
const SHA256 = tlv(0x30, oid('608648016503040201'), NULL);
const SHA384 = tlv(0x30, oid('608648016503040202'), NULL);
const SHA1 = tlv(0x30, oid('2b0e03021a'), NULL);
const alg = (...parts: Buffer[]) => signatureScheme(readTlv(tlv(0x30, ...parts), 0, 'test'));
const pss = (...fields: Buffer[]) => alg(PSS, tlv(0x30, ...fields));

test('RSASSA-PSS: hash, MGF1 hash and salt length from the parameters; absent ones take RFC 4055\'s defaults', () => {
  assert.deepEqual(pss(tlv(0xa0, SHA256), tlv(0xa1, tlv(0x30, MGF1, SHA256)), tlv(0xa2, int(32))), { hash: 'sha256', pssSaltLength: 32 });
  assert.deepEqual(pss(tlv(0xa0, SHA384), tlv(0xa1, tlv(0x30, MGF1, SHA384)), tlv(0xa2, int(48)), tlv(0xa3, int(1))), { hash: 'sha384', pssSaltLength: 48 });
  assert.deepEqual(pss(), { hash: 'sha1', pssSaltLength: 20 });
});

test('RSASSA-PSS parameters node:crypto cannot verify are refused with the reason', () => {
  const why = (s: ReturnType<typeof alg>) => ('unsupported' in s ? s.unsupported : 'supported');
  assert.match(why(pss(tlv(0xa0, SHA256))), /MGF1 over sha1 but the hash sha256/); // MGF1 left at its sha1 default
  assert.match(why(pss(tlv(0xa0, SHA256), tlv(0xa1, tlv(0x30, oid('2a03'), SHA256)))), /other than MGF1/);
  assert.match(why(pss(tlv(0xa0, tlv(0x30, oid('2a03'))))), /hash certgate does not know/);
  assert.match(why(pss(tlv(0xa3, int(2)))), /trailer field other than 1/);
  assert.match(why(pss(tlv(0xa2, tlv(0x02, Buffer.from([0x80]))))), /salt length/);
  assert.match(why(alg(PSS)), /without its parameters/);
});

test('other algorithms: the digest, null for EdDSA, unsupported for the rest', () => {
  assert.deepEqual(alg(oid('2a8648ce3d040302')), { hash: 'sha256' }); // ecdsa-with-SHA256
  assert.deepEqual(alg(oid('2b6570')), { hash: null }); // Ed25519
  assert.ok('unsupported' in alg(oid('608648016503040302'))); // dsa-with-sha256
  assert.ok('unsupported' in alg(oid('2a864886f70d010104'), NULL)); // md5WithRSAEncryption
});
