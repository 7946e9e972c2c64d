/**
 * The DER reader sees attacker-chosen bytes (a client certificate's names and SANs). Whatever the
 * input, it must either return or throw a DerError: never read out of range, never spin, never
 * throw anything else (a RangeError from Buffer would mean an unchecked read).
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { describe, test } from 'node:test';
import { decodeOid, DerError, ipText, readAll, readCertificate, readGeneralNames, readTlv } from '../../dist/x509/der.js';
import { printDn } from '../../dist/x509/dn.js';
import { ava, craftCertificate, name, oid, rdn, sanExtension, tlv } from '../helpers/openssl.js';

const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const SUBJECT = name(rdn(ava('2.5.4.10', 0x0c, 'Example')), rdn(ava('2.5.4.3', 0x0c, 'svc-a'), ava('0.9.2342.19200300.100.1.1', 0x0c, '42')));
const SAN = sanExtension([[0x86, 'spiffe://example.org/a'], [0x82, 'svc-a.internal'], [0x87, Buffer.from([10, 0, 0, 1])]]);
const CERT = craftCertificate(privateKey, { subject: SUBJECT, extensions: [SAN] });

/** Runs everything identity does with the input; returns normally or throws DerError. */
function parseAll(der: Buffer): void {
  const parts = readCertificate(der);
  printDn(parts.subject);
  printDn(parts.issuer);
  if (parts.subjectAltName !== undefined) readGeneralNames(parts.subjectAltName);
}

function assertDerError(fn: () => unknown, message?: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof DerError, `expected DerError, got ${String(err)}`);
    assert.match(err.message, /^malformed DER: /);
    if (message !== undefined) assert.match(err.message, message);
    return true;
  });
}

/** Deterministic PRNG (xorshift32), so a failure reproduces. */
function random(seed: number): () => number {
  let x = seed;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 0x100000000;
  };
}

describe('der: well-formed input', () => {
  test('reads the subject, issuer and SAN of a certificate', () => {
    const parts = readCertificate(CERT);
    assert.deepEqual(parts.subject, SUBJECT);
    assert.deepEqual(parts.issuer, SUBJECT);
    assert.deepEqual(readGeneralNames(parts.subjectAltName ?? Buffer.alloc(0)), {
      uri: ['spiffe://example.org/a'], dns: ['svc-a.internal'], email: [], ip: ['10.0.0.1'],
    });
  });

  test('a certificate without extensions has no SAN', () => {
    assert.equal(readCertificate(craftCertificate(privateKey, { subject: SUBJECT })).subjectAltName, undefined);
  });

  test('decodes OIDs, including multi-byte first arcs and 128-bit arcs', () => {
    assert.equal(decodeOid(Buffer.from('550403', 'hex')), '2.5.4.3');
    assert.equal(decodeOid(Buffer.from('2a864886f70d010901', 'hex')), '1.2.840.113549.1.9.1');
    for (const dotted of ['0.9.2342.19200300.100.1.25', '2.999.3', '2.25.329800735698586629295641978511506172918', '1.39.0']) {
      assert.equal(decodeOid(oid(dotted).subarray(2)), dotted);
    }
  });

  test('long-form lengths', () => {
    const big = tlv(0x04, Buffer.alloc(300, 1));
    assert.equal(big.subarray(0, 4).toString('hex'), '0482012c');
    assert.equal(readTlv(big, 0, 'x').value.length, 300);
  });

  test('skips GeneralName kinds it does not use, keeps order of the others', () => {
    const other = tlv(0xa0, oid('1.2.3'), tlv(0xa0, tlv(0x0c, Buffer.from('x'))));
    const dirName = tlv(0xa4, name(rdn(ava('2.5.4.3', 0x0c, 'd'))));
    const names = tlv(0x30, tlv(0x86, Buffer.from('u:2')), other, tlv(0x81, Buffer.from('a@b')), dirName,
      tlv(0x88, oid('1.2.3').subarray(2)), tlv(0x86, Buffer.from('u:1')));
    assert.deepEqual(readGeneralNames(names), { uri: ['u:2', 'u:1'], dns: [], email: ['a@b'], ip: [] });
  });

  test('IP addresses print as inet_ntop does', () => {
    const v6 = (hex: string): string => ipText(Buffer.from(hex, 'hex'));
    assert.equal(ipText(Buffer.from([192, 0, 2, 255])), '192.0.2.255');
    assert.equal(v6('00000000000000000000000000000001'), '::1');
    assert.equal(v6('00000000000000000000000000000000'), '::');
    assert.equal(v6('20010db8000000000000000000000001'), '2001:db8::1');
    assert.equal(v6('20010db8000000010000000000000001'), '2001:db8:0:1::1');
    assert.equal(v6('20010db8000000000001000000000001'), '2001:db8::1:0:0:1'); // first of equal runs
    assert.equal(v6('20010db8000000000001000000000000'), '2001:db8:0:0:1::'); // longest run wins
    assert.equal(v6('20010db8000100010001000100010001'), '2001:db8:1:1:1:1:1:1');
    assert.equal(v6('20010db8000000010001000100010001'), '2001:db8:0:1:1:1:1:1'); // a single 0 stays
    assert.equal(v6('fe800000000000000000000000000000'), 'fe80::');
    assert.equal(v6('00000000000000000000ffffc0000201'), '::ffff:192.0.2.1');
    assert.equal(v6('000000000000000000000000c0000201'), '::192.0.2.1');
    assert.equal(ipText(Buffer.from([10, 0, 0, 0, 255, 0, 0, 0])), '#0a000000ff000000');
  });
});

describe('der: malformed input throws DerError', () => {
  test('every truncation of a certificate', () => {
    for (let n = 0; n < CERT.length; n++) assertDerError(() => parseAll(CERT.subarray(0, n)));
  });

  test('trailing bytes after the certificate', () => {
    assertDerError(() => parseAll(Buffer.concat([CERT, Buffer.of(0)])), /trailing/);
  });

  test('indefinite, oversized and overrunning lengths', () => {
    assertDerError(() => readTlv(Buffer.from('308000', 'hex'), 0, 'x'), /indefinite/);
    assertDerError(() => readTlv(Buffer.from('30850000000001', 'hex'), 0, 'x'), /too long/);
    assertDerError(() => readTlv(Buffer.from('3084ffffffff00', 'hex'), 0, 'x'), /runs past/);
    assertDerError(() => readTlv(Buffer.from('3082', 'hex'), 0, 'x'), /truncated length/);
    assertDerError(() => readTlv(Buffer.from('30', 'hex'), 0, 'x'), /truncated header/);
    assertDerError(() => readAll(Buffer.from('0400ff', 'hex'), 'x'), /truncated header/);
  });

  test('high tag numbers', () => {
    assertDerError(() => readTlv(Buffer.from('1f8101', 'hex'), 0, 'x'), /high tag/);
  });

  test('bad OBJECT IDENTIFIERs', () => {
    assertDerError(() => decodeOid(Buffer.alloc(0)), /empty/);
    assertDerError(() => decodeOid(Buffer.from('5581', 'hex')), /truncated/);
    assertDerError(() => decodeOid(Buffer.from('558001', 'hex')), /non-minimal/);
  });

  test('wrong structure', () => {
    assertDerError(() => readCertificate(tlv(0x31)), /expected tag 0x30/);
    assertDerError(() => readCertificate(tlv(0x30)), /empty/);
    assertDerError(() => readCertificate(tlv(0x30, tlv(0x30, tlv(0x02, [1])))), /too few fields/);
    assertDerError(() => readCertificate(tlv(0x30, tlv(0x04, [1]))), /expected tag 0x30/);
    assertDerError(() => printDn(tlv(0x30, tlv(0x30))), /expected tag 0x31/);
    assertDerError(() => printDn(tlv(0x30, tlv(0x31, tlv(0x30, oid('2.5.4.3'))))), /type and value/);
    assertDerError(() => printDn(tlv(0x30, tlv(0x31, tlv(0x30, tlv(0x0c), tlv(0x0c))))), /expected tag 0x06/);
    assertDerError(() => printDn(name(rdn(ava('2.5.4.3', 0x1e, Buffer.of(0, 0x41, 0))))), /BMPString length 3/);
    assertDerError(() => printDn(name(rdn(ava('2.5.4.3', 0x1c, Buffer.of(0, 0, 0x41))))), /UniversalString/);
    assertDerError(() => readGeneralNames(tlv(0x30, tlv(0x0c, Buffer.from('x')))), /GeneralName/);
    assertDerError(() => readGeneralNames(tlv(0x30, tlv(0x30, tlv(0x30)))), /GeneralName/);
  });

  test('a second SubjectAltName extension', () => {
    const twice = craftCertificate(privateKey, { subject: SUBJECT, extensions: [SAN, SAN] });
    assertDerError(() => readCertificate(twice), /appears twice/);
  });

  test('random garbage and random corruption of a real certificate', { timeout: 10_000 }, () => {
    const next = random(0xc0ffee);
    let parsed = 0;
    for (let i = 0; i < 3000; i++) {
      let input: Buffer;
      if (i % 2 === 0) {
        input = Buffer.from(Array.from({ length: Math.floor(next() * 80) }, () => Math.floor(next() * 256)));
        if (input.length > 0 && i % 4 === 0) input[0] = 0x30; // get past the first check more often
      } else {
        input = Buffer.from(CERT);
        for (let flips = 1 + Math.floor(next() * 4); flips > 0; flips--) input[Math.floor(next() * input.length)] = Math.floor(next() * 256);
      }
      try {
        parseAll(input);
        parsed++;
      } catch (err) {
        assert.ok(err instanceof DerError, `input ${input.toString('hex')} threw ${String(err)}`);
      }
    }
    // Corruption that misses the parsed structures (e.g. the key or signature) still parses.
    assert.ok(parsed > 0);
  });
});
