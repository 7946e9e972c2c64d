/**
 * x509/crl.ts: a CRL's extensions and its entries' extensions, on hand-built DER for shapes `openssl ca`
 * cannot make (critical entry extensions, an extension twice, contradictory IDP flags). RFC 5280 5.2/5.3:
 * a critical extension certgate does not process makes the CRL unusable, so parseCrl names every one;
 * issuingDistributionPoint (5.2.5) says what the CRL covers (crlScope). The CRLs openssl makes are
 * covered end to end in test/e2e/crl-scope.test.ts. parseCrl does not verify the signature (crlSignedBy does).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { crlScope, parseCrl } from '../../dist/x509/crl.js';

const tlv = (tag: number, ...parts: Buffer[]): Buffer => {
  const body = Buffer.concat(parts);
  const n = body.length;
  const len = n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : [0x82, n >> 8, n & 0xff];
  return Buffer.concat([Buffer.from([tag, ...len]), body]);
};
const hex = (h: string): Buffer => Buffer.from(h, 'hex');
const oid = (h: string): Buffer => tlv(0x06, hex(h));
const TRUE = hex('0101ff');
const ECDSA_SHA256 = hex('300a06082a8648ce3d040302');
const NAME = tlv(0x30, tlv(0x31, tlv(0x30, oid('550403'), tlv(0x0c, Buffer.from('test CA')))));
const TIME = tlv(0x17, Buffer.from('261201000000Z'));
const ext = (id: string, critical: boolean, value: Buffer): Buffer => tlv(0x30, oid(id), ...(critical ? [TRUE] : []), tlv(0x04, value));
const IDP = '551d1c';
const idp = (...fields: Buffer[]): Buffer => ext(IDP, true, tlv(0x30, ...fields));
const entry = (serial: number, ...exts: Buffer[]): Buffer =>
  tlv(0x30, tlv(0x02, Buffer.from([serial])), TIME, ...(exts.length > 0 ? [tlv(0x30, ...exts)] : []));

function crl(o: { entries?: Buffer[]; exts?: Buffer[] } = {}): ReturnType<typeof parseCrl> {
  const tbs = tlv(0x30, hex('020101'), ECDSA_SHA256, NAME, TIME,
    ...(o.entries !== undefined ? [tlv(0x30, ...o.entries)] : []),
    ...(o.exts !== undefined ? [tlv(0xa0, tlv(0x30, ...o.exts))] : []));
  return parseCrl(tlv(0x30, tbs, ECDSA_SHA256, tlv(0x03, hex('00aabb'))));
}

test('critical CRL extensions certgate does not process are named; the ones it processes (IDP, deltaCRLIndicator, AKID) and non-critical ones are not', () => {
  const c = crl({ exts: [ext('2a0304', true, hex('0c0178')), ext('551d14', true, hex('020101')), ext('551d23', true, hex('3000')),
    ext('551d1b', true, hex('020101')), ext('2a0305', false, hex('0500'))] });
  assert.deepEqual(c.unprocessedCritical, ['1.2.3.4', 'cRLNumber (2.5.29.20)']);
  assert.equal(c.delta, true);
  assert.deepEqual(crl({ exts: [ext('551d14', false, hex('020101'))] }).unprocessedCritical, []);
  assert.deepEqual(crl().unprocessedCritical, []);
});

test('critical entry extensions are named with their serial: certificateIssuer (indirect CRLs) and any other; non-critical reasonCode is not', () => {
  const c = crl({ entries: [
    entry(0x10, ext('551d15', false, hex('0a0101'))),
    entry(0x11, ext('551d1d', true, tlv(0x30, tlv(0xa4, NAME)))),
    entry(0x12, ext('2a0304', true, hex('0500')), ext('551d18', false, hex('180f32303236313230313030303030305a'))),
  ] });
  assert.deepEqual(c.unprocessedCritical, ['11: certificateIssuer (2.5.29.29)', '12: 1.2.3.4']);
  assert.deepEqual([...c.revoked], ['10', '11', '12']);
});

test('an extension twice, a malformed entry extension list or trailing data in an entry is refused as malformed', () => {
  assert.throws(() => crl({ exts: [ext('551d14', false, hex('020101')), ext('551d14', false, hex('020102'))] }), /cRLNumber \(2\.5\.29\.20\) appears twice/);
  assert.throws(() => crl({ exts: [idp(hex('8201ff')), idp(hex('8101ff'))] }), /appears twice/);
  assert.throws(() => crl({ entries: [tlv(0x30, tlv(0x02, hex('01')), TIME, tlv(0x31))] }), /crlEntryExtensions/);
  assert.throws(() => crl({ entries: [tlv(0x30, tlv(0x02, hex('01')), TIME, tlv(0x30), hex('0500'))] }), /trailing data/);
});

test('issuingDistributionPoint: what the CRL covers and why it is partial', () => {
  const scope = (...fields: Buffer[]) => crlScope(crl({ exts: [idp(...fields)] }));
  assert.deepEqual(crlScope(crl()), { ee: true, ca: true });
  assert.deepEqual(scope(), { ee: true, ca: true });
  assert.deepEqual(scope(hex('8101ff')), { ee: true, ca: false }); // onlyContainsUserCerts
  assert.deepEqual(scope(hex('8201ff')), { ee: false, ca: true }); // onlyContainsCACerts
  assert.deepEqual(scope(hex('850100')), { ee: true, ca: true }); // onlyContainsAttributeCerts FALSE (written out)
  assert.deepEqual(scope(hex('8501ff')), { ee: false, ca: false });
  assert.match(scope(hex('83020560')).partial ?? '', /^onlySomeReasons/); // keyCompromise, cACompromise
  assert.match(scope(hex('8401ff')).partial ?? '', /^indirectCRL/);
  const dp = tlv(0xa0, tlv(0xa0, tlv(0x86, Buffer.from('http://crl.example/1.crl'))));
  assert.match(scope(dp).partial ?? '', /^a distributionPoint/);
  assert.match(scope(dp, hex('83020560'), hex('8401ff')).partial ?? '', /distributionPoint .*, onlySomeReasons .*, indirectCRL/);
});

test('issuingDistributionPoint: two "only" flags, fields out of order or unknown are refused as malformed', () => {
  assert.throws(() => crl({ exts: [idp(hex('8101ff'), hex('8201ff'))] }), /more than one of onlyContainsUserCerts/);
  assert.throws(() => crl({ exts: [idp(hex('8201ff'), hex('8101ff'))] }), /unexpected field/);
  assert.throws(() => crl({ exts: [idp(hex('8601ff'))] }), /unexpected field/);
  assert.throws(() => crl({ exts: [idp(hex('820200ff'))] }), /not one byte/);
});
