/**
 * certgate's own CRL check and trust re-check (src/tls/revocation/), over an in-memory PKI:
 *
 *   root ── inter ── leaves            fakeInter: inter's name, another key (also signed by root)
 *        └─ direct (a leaf of the root) otherRoot: trusted by nobody
 *
 * CRLs come from createCrl, or from rawCrl below when the DER must be what createCrl never writes
 * (a serial without its 00 sign byte, a negative serial, a delta CRL).
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { KeyObject, X509Certificate, sign } from 'node:crypto';
import { checkChainRevocation, checkRevocation } from '../../dist/tls/revocation/check.js';
import { buildRevocationIndex, type RevocationIndex } from '../../dist/tls/revocation/crl-index.js';
import { reverifyTrust } from '../../dist/tls/revocation/reverify.js';
import { createCa, createCrl, createLeaf, crlToPem, generateKeyPair, randomSerial, x509, type Issued } from '../../dist/pki/x509.js';
import { children, readCertificate, readOne, TAG } from '../../dist/x509/der.js';

const DAY = 86_400_000;
const NOW = Date.now();

let root: Issued;
let inter: Issued;
let fakeInter: Issued;
let otherRoot: Issued;

before(async () => {
  root = await createCa({ subject: [['O', 'certgate test'], ['CN', 'Rev Root']], notBefore: new Date(NOW - 30 * DAY) });
  [inter, fakeInter, otherRoot] = await Promise.all([
    createCa({ subject: [['O', 'certgate test'], ['CN', 'Rev Inter']], issuer: root, notBefore: new Date(NOW - 30 * DAY) }),
    createCa({ subject: [['O', 'certgate test'], ['CN', 'Rev Inter']], issuer: root, notBefore: new Date(NOW - 30 * DAY) }),
    createCa({ subject: [['CN', 'Other Root']] }),
  ]);
});

const node = (i: { cert: x509.X509Certificate }): X509Certificate => new X509Certificate(Buffer.from(i.cert.rawData));
const leafOf = (issuer: Issued, cn = 'svc'): Promise<Issued> => createLeaf({ issuer, subject: [['CN', cn]], usage: 'client' });

interface Signer {
  /** A DN string, or a CA certificate's own subject Name (so the issuer DER matches byte for byte). */
  readonly name: string | x509.Name;
  readonly keys: CryptoKeyPair;
}

interface MintOptions {
  readonly subject: string;
  /** Who signs: a CA (its name and key), or the new certificate's own key (self-signed). */
  readonly issuer?: Signer;
  readonly keys?: CryptoKeyPair;
  readonly ca?: boolean;
  readonly serial?: string;
  readonly notBefore?: Date;
  readonly notAfter?: Date;
  /** false: no authorityKeyIdentifier, so only the signature tells two same-named issuers apart. */
  readonly aki?: boolean;
  /** false: no keyUsage either (then only basicConstraints says whether it may issue). */
  readonly keyUsage?: boolean;
}

/** Any certificate, with the name/key/serial/validity a test needs (createCa/createLeaf pick these). */
async function mint(o: MintOptions): Promise<{ cert: x509.X509Certificate; keys: CryptoKeyPair; signer: Signer }> {
  const keys = o.keys ?? await generateKeyPair();
  const signer = o.issuer?.keys ?? keys;
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: o.serial ?? randomSerial(),
    subject: o.subject,
    issuer: o.issuer?.name ?? o.subject,
    publicKey: keys.publicKey,
    signingKey: signer.privateKey,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    notBefore: o.notBefore ?? new Date(NOW - DAY),
    notAfter: o.notAfter ?? new Date(NOW + 30 * DAY),
    extensions: [
      new x509.BasicConstraintsExtension(o.ca === true, undefined, true),
      ...(o.keyUsage === false ? [] : [new x509.KeyUsagesExtension(o.ca === true
        ? x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign
        : x509.KeyUsageFlags.digitalSignature, true)]),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      ...(o.aki === false ? [] : [await x509.AuthorityKeyIdentifierExtension.create(signer.publicKey)]),
    ],
  });
  return { cert, keys, signer: { name: cert.subjectName, keys } };
}

const asIssuer = (i: Issued): Signer => ({ name: i.cert.subjectName, keys: { publicKey: i.publicKey, privateKey: i.privateKey } });

// ---- a minimal DER writer, for CRLs and certificates createCrl/the generator would never produce

function tlv(tag: number, ...parts: Buffer[]): Buffer {
  const body = Buffer.concat(parts);
  const n = body.length;
  const len = n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : [0x82, n >> 8, n & 0xff];
  return Buffer.concat([Buffer.from([tag, ...len]), body]);
}
const utcTime = (d: Date): Buffer => tlv(0x17, Buffer.from(`${d.toISOString().slice(2, 19).replace(/[-T:]/g, '')}Z`, 'latin1'));
const ECDSA_SHA256 = Buffer.from('300a06082a8648ce3d040302', 'hex');
const DELTA_EXTENSION = tlv(0x30, Buffer.from('0603551d1b', 'hex'), Buffer.from('0101ff', 'hex'), tlv(0x04, Buffer.from('020101', 'hex')));
/** A critical issuingDistributionPoint with these fields (IMPLICIT-tagged, e.g. '8201ff' onlyContainsCACerts). */
const idpExtension = (...fields: string[]): Buffer =>
  tlv(0x30, Buffer.from('0603551d1c', 'hex'), Buffer.from('0101ff', 'hex'), tlv(0x04, tlv(0x30, ...fields.map((f) => Buffer.from(f, 'hex')))));

/** A v2 CRL signed by `issuer`, listing the INTEGER contents given as hex exactly as written; `exts`: more crlExtensions. */
function rawCrl(issuer: Issued, serialBytes: readonly string[], o: { delta?: boolean; thisUpdate?: Date; nextUpdate?: Date; exts?: Buffer[] } = {}): Buffer {
  const thisUpdate = o.thisUpdate ?? new Date(NOW - 60_000);
  const entries = serialBytes.map((hex) => tlv(0x30, tlv(0x02, Buffer.from(hex, 'hex')), utcTime(thisUpdate)));
  const tbs = tlv(0x30,
    tlv(0x02, Buffer.from([1])), ECDSA_SHA256, readCertificate(node(issuer).raw).subject,
    utcTime(thisUpdate), utcTime(o.nextUpdate ?? new Date(NOW + 7 * DAY)),
    ...(entries.length > 0 ? [tlv(0x30, ...entries)] : []),
    ...(o.delta === true || o.exts !== undefined ? [tlv(0xa0, tlv(0x30, ...(o.delta === true ? [DELTA_EXTENSION] : []), ...(o.exts ?? [])))] : []));
  const sig = sign('sha256', tbs, KeyObject.from(issuer.privateKey));
  return tlv(0x30, tbs, ECDSA_SHA256, tlv(0x03, Buffer.from([0]), sig));
}

const index = (crls: Array<string | Uint8Array>, cas: readonly Issued[]): RevocationIndex =>
  buildRevocationIndex(crls, cas.map(node));
const pem = async (...args: Parameters<typeof createCrl>): Promise<string> => crlToPem(await createCrl(...args));

// ---------------------------------------------------------------------------------------------
// The index and one certificate

test('a leaf listed in its issuer\'s CRL is revoked, one not listed is ok', async () => {
  const [revoked, good] = await Promise.all([leafOf(inter, 'revoked'), leafOf(inter, 'good')]);
  const idx = index([await pem({ issuer: inter, entries: [{ serial: node(revoked).serialNumber }] })], [root, inter]);
  assert.deepEqual(idx.skipped, []);
  assert.equal(checkRevocation(node(revoked), idx, NOW, 'refuse'), 'revoked');
  assert.equal(checkRevocation(node(good), idx, NOW, 'refuse'), 'ok');
  assert.equal(checkChainRevocation(node(revoked), [], idx, NOW, 'refuse', 'leaf'), 'revoked');
  assert.equal(checkChainRevocation(node(good), [node(inter)], idx, NOW, 'refuse', 'chain'), 'ok');
});

test('a serial whose first byte is >= 0x80 matches with or without the DER 00 sign byte in the CRL', async () => {
  const high = await mint({ subject: 'CN=high', issuer: asIssuer(inter), serial: '80aa01' });
  const der = Buffer.from(high.cert.rawData);
  assert.equal(node(high).serialNumber, '80AA01', 'Node prints it without the 00');
  assert.ok(der.includes(Buffer.from('02040080aa01', 'hex')), 'the DER carries the 00 sign byte');
  const cases: Array<[string, string | Buffer]> = [
    ['createCrl from serialNumber', await pem({ issuer: inter, entries: [{ serial: node(high).serialNumber }] })],
    ['raw 0080AA01', rawCrl(inter, ['0080aa01'])],
    ['raw 80AA01 (no sign byte)', rawCrl(inter, ['80aa01'])],
  ];
  for (const [what, crl] of cases) {
    assert.equal(checkRevocation(node(high), index([crl], [root, inter]), NOW, 'refuse'), 'revoked', what);
  }
  // Only the value counts: 80AA02 is another serial.
  assert.equal(checkRevocation(node(high), index([rawCrl(inter, ['0080aa02', '7faa01'])], [root, inter]), NOW, 'refuse'), 'ok');
});

test('a negative serial (Node prints "-7F7FFF") matches the same DER bytes in the CRL', async () => {
  // The generator only writes positive serials: patch 00 80 01 → 80 80 01 and sign the TBS again.
  const pos = await mint({ subject: 'CN=negative', issuer: asIssuer(inter), serial: '008001' });
  const [tbs] = children(readOne(Buffer.from(pos.cert.rawData), TAG.SEQUENCE, 'cert'), 'cert');
  assert.ok(tbs !== undefined);
  const patched = Buffer.from(tbs.raw);
  const at = patched.indexOf(Buffer.from('0203008001', 'hex'));
  assert.ok(at > 0);
  patched[at + 2] = 0x80;
  const sig = sign('sha256', patched, KeyObject.from(inter.privateKey));
  const neg = new X509Certificate(tlv(0x30, patched, ECDSA_SHA256, tlv(0x03, Buffer.from([0]), sig)));
  assert.equal(neg.serialNumber, '-7F7FFF');
  assert.equal(checkRevocation(neg, index([rawCrl(inter, ['808001'])], [root, inter]), NOW, 'refuse'), 'revoked');
  assert.equal(checkRevocation(neg, index([rawCrl(inter, ['7f7fff'])], [root, inter]), NOW, 'refuse'), 'ok');
});

test('an issuer without a CRL means not revoked, even when another CA lists the same serial', async () => {
  const direct = await leafOf(root, 'direct');
  // The intermediate's CRL lists the root-issued leaf's serial: serials are per issuer, so it does not apply.
  const idx = index([await pem({ issuer: inter, entries: [{ serial: node(direct).serialNumber }] })], [root, inter]);
  assert.equal(checkRevocation(node(direct), idx, NOW, 'refuse'), 'ok');
  assert.equal(checkChainRevocation(node(direct), [], idx, NOW, 'refuse', 'chain'), 'ok');
  assert.equal(checkRevocation(node(direct), index([], [root, inter]), NOW, 'refuse'), 'ok');
});

test('a CRL signed by a same-named CA with another key is not used for the first CA\'s clients', async () => {
  const fake = asIssuer(fakeInter);
  const [ofInter, ofFake] = await Promise.all([
    mint({ subject: 'CN=of-inter', issuer: asIssuer(inter), serial: '0a0b0c', aki: false }),
    mint({ subject: 'CN=of-fake', issuer: fake, serial: '0a0b0c', aki: false }),
  ]);
  const fakeCrl = await pem({ issuer: fakeInter, entries: [{ serial: '0A0B0C' }] });
  // fakeInter not trusted: its CRL matches no client CA.
  const alone = index([fakeCrl], [root, inter]);
  assert.deepEqual(alone.skipped, [{ index: 0, issuer: 'CN=Rev Inter,O=certgate test', why: 'unknown_issuer' }]);
  assert.equal(checkRevocation(node(ofInter), alone, NOW, 'refuse'), 'ok');
  // Both trusted, same serial: only fakeInter's client is revoked.
  const both = index([await pem({ issuer: inter }), fakeCrl], [root, inter, fakeInter]);
  assert.deepEqual(both.skipped, []);
  assert.equal(both.entries().length, 2);
  assert.equal(checkRevocation(node(ofInter), both, NOW, 'refuse'), 'ok');
  assert.equal(checkRevocation(node(ofFake), both, NOW, 'refuse'), 'revoked');
});

test('a stale CRL: refuse → crl_expired, allow → the last CRL is used; a listed serial is revoked either way', async () => {
  const [listed, unlisted] = await Promise.all([leafOf(inter, 'listed'), leafOf(inter, 'unlisted')]);
  const stale = await createCrl({
    issuer: inter, entries: [{ serial: node(listed).serialNumber }],
    thisUpdate: new Date(NOW - 10 * DAY), nextUpdate: new Date(NOW - DAY),
  });
  const idx = index([crlToPem(stale)], [root, inter]);
  assert.equal(checkRevocation(node(unlisted), idx, NOW, 'refuse'), 'crl_expired');
  assert.equal(checkRevocation(node(unlisted), idx, NOW, 'allow'), 'ok');
  assert.equal(checkRevocation(node(listed), idx, NOW, 'refuse'), 'revoked');
  assert.equal(checkRevocation(node(listed), idx, NOW, 'allow'), 'revoked');
  // nextUpdate itself is still current (as OpenSSL and tls/checks/crls.ts count it); one ms later it is not.
  const next = stale.nextUpdate?.getTime() ?? 0;
  assert.equal(checkRevocation(node(unlisted), idx, next, 'refuse'), 'ok');
  assert.equal(checkRevocation(node(unlisted), idx, next + 1, 'refuse'), 'crl_expired');
  // Two stale CRLs: under allow the newer one decides.
  const staler = await pem({
    issuer: inter, entries: [{ serial: node(unlisted).serialNumber }],
    thisUpdate: new Date(NOW - 20 * DAY), nextUpdate: new Date(NOW - 15 * DAY),
  });
  const two = index([staler, crlToPem(stale)], [root, inter]);
  assert.equal(checkRevocation(node(unlisted), two, NOW, 'allow'), 'ok');
  assert.equal(checkRevocation(node(listed), two, NOW, 'allow'), 'revoked');
});

test('a CRL from the future is treated like a stale one (refuse → crl_expired), unless a current one exists', async () => {
  const [listed, unlisted] = await Promise.all([leafOf(inter, 'listed'), leafOf(inter, 'unlisted')]);
  const future = await pem({ issuer: inter, entries: [{ serial: node(listed).serialNumber }], thisUpdate: new Date(NOW + DAY), crlNumber: 2n });
  const idx = index([future], [root, inter]);
  assert.equal(checkRevocation(node(unlisted), idx, NOW, 'refuse'), 'crl_expired');
  assert.equal(checkRevocation(node(unlisted), idx, NOW, 'allow'), 'ok');
  assert.equal(checkRevocation(node(listed), idx, NOW, 'refuse'), 'revoked');
  // With a current CRL beside it, the current one decides (OpenSSL prefers a current CRL too).
  const withCurrent = index([future, await pem({ issuer: inter })], [root, inter]);
  assert.equal(checkRevocation(node(unlisted), withCurrent, NOW, 'refuse'), 'ok');
  assert.equal(checkRevocation(node(listed), withCurrent, NOW, 'refuse'), 'ok');
});

test('of several current CRLs of one CA the newest decides', async () => {
  const [held, newlyRevoked] = await Promise.all([leafOf(inter, 'held'), leafOf(inter, 'new')]);
  const older = await pem({ issuer: inter, entries: [{ serial: node(held).serialNumber }], thisUpdate: new Date(NOW - 2 * DAY), crlNumber: 1n });
  const newer = await pem({ issuer: inter, entries: [{ serial: node(newlyRevoked).serialNumber }], thisUpdate: new Date(NOW - DAY), crlNumber: 2n });
  for (const order of [[older, newer], [newer, older]]) {
    const idx = index(order, [root, inter]);
    assert.equal(checkRevocation(node(held), idx, NOW, 'refuse'), 'ok', 'released from hold in the newer CRL');
    assert.equal(checkRevocation(node(newlyRevoked), idx, NOW, 'refuse'), 'revoked');
    assert.equal(idx.entries().length, 1);
    assert.equal(idx.entries()[0]?.thisUpdate.getTime(), Math.floor((NOW - DAY) / 1000) * 1000);
  }
});

test('chain mode catches a revoked intermediate that leaf mode ignores', async () => {
  const inter2 = await createCa({ subject: [['CN', 'Rev Inter 2']], issuer: root });
  const leaf = await leafOf(inter2);
  const crls = [await pem({ issuer: root, entries: [{ serial: node(inter2).serialNumber }] })];
  // The client sent the intermediate; client_ca holds the root only.
  const sent = index(crls, [root]);
  assert.equal(checkChainRevocation(node(leaf), [node(inter2)], sent, NOW, 'refuse', 'leaf'), 'ok');
  assert.equal(checkChainRevocation(node(leaf), [node(inter2)], sent, NOW, 'refuse', 'chain'), 'revoked');
  // The intermediate only in client_ca, nothing sent: still found on the path.
  const trusted = index(crls, [root, inter2]);
  assert.equal(checkChainRevocation(node(leaf), [], trusted, NOW, 'refuse', 'chain'), 'revoked');
  // A revoked CA certificate the client sent but that is not on its path does not count.
  const good = await leafOf(inter);
  assert.equal(checkChainRevocation(node(good), [node(inter), node(inter2)], index(crls, [root, inter]), NOW, 'refuse', 'chain'), 'ok');
  // A stale root CRL: chain mode says so, leaf mode does not look at it.
  const staleRoot = await pem({ issuer: root, thisUpdate: new Date(NOW - 10 * DAY), nextUpdate: new Date(NOW - DAY) });
  const mixed = index([staleRoot, await pem({ issuer: inter2 })], [root, inter2]);
  assert.equal(checkChainRevocation(node(leaf), [], mixed, NOW, 'refuse', 'leaf'), 'ok');
  assert.equal(checkChainRevocation(node(leaf), [], mixed, NOW, 'refuse', 'chain'), 'crl_expired');
  assert.equal(checkChainRevocation(node(leaf), [], mixed, NOW, 'allow', 'chain'), 'ok');
  // The walk ends below the root: a trust anchor is not on the path (RFC 5280 6.1), even when it lists itself.
  const selfListed = index([await pem({ issuer: root, entries: [{ serial: node(root).serialNumber }] })], [root, inter]);
  assert.equal(checkChainRevocation(node(good), [node(inter)], selfListed, NOW, 'refuse', 'chain'), 'ok');
});

test('the index: PEM (several blocks) and DER sources, RFC 4514 labels, skipped CRLs', async () => {
  const leaf = await leafOf(inter);
  const serial = node(leaf).serialNumber;
  const rootCrl = await createCrl({ issuer: root, nextUpdate: new Date(NOW + 3 * DAY) });
  const idx = index([
    crlToPem(await createCrl({ issuer: inter, entries: [{ serial }] })) + crlToPem(rootCrl),
    rawCrl(inter, [serial], { delta: true }),
    Buffer.from('30030201ff', 'hex'),
  ], [root, inter]);
  assert.deepEqual(idx.skipped, [
    { index: 2, issuer: 'CN=Rev Inter,O=certgate test', why: 'delta' },
    { index: 3, why: 'unparsable' },
  ]);
  const entries = [...idx.entries()].sort((a, b) => a.issuer.localeCompare(b.issuer));
  assert.deepEqual(entries.map((e) => [e.issuer, e.revoked]), [['CN=Rev Inter,O=certgate test', 1], ['CN=Rev Root,O=certgate test', 0]]);
  assert.equal(entries[1]?.nextUpdate.getTime(), Math.floor((NOW + 3 * DAY) / 1000) * 1000);
  assert.equal(checkRevocation(node(leaf), idx, NOW, 'refuse'), 'revoked');
  // A delta CRL alone revokes nothing: it only lists changes against a base CRL.
  assert.equal(checkRevocation(node(leaf), index([rawCrl(inter, [serial], { delta: true })], [root, inter]), NOW, 'refuse'), 'ok');
  assert.throws(() => checkRevocation(node(leaf), { entries: () => [], skipped: [] }, NOW, 'refuse'), TypeError);
});

test('issuingDistributionPoint: a CRL for CA certificates only never decides a leaf, and is used for CA certificates in chain mode; critical and partial CRLs are skipped', async () => {
  const inter2 = await createCa({ subject: [['CN', 'Rev Inter 3']], issuer: root });
  const leaf = await leafOf(root, 'direct'); // issued by the root itself
  const interLeaf = await leafOf(inter2);
  const [leafSerial, interSerial] = [node(leaf).serialNumber, node(inter2).serialNumber];
  // The root's newest CRL covers CA certificates only and lists the intermediate; its older complete CRL the leaf.
  const complete = rawCrl(root, [leafSerial], { thisUpdate: new Date(NOW - 3_600_000) });
  const arl = rawCrl(root, [interSerial], { exts: [idpExtension('8201ff')] });
  const both = index([complete, arl], [root, inter2]);
  assert.deepEqual(both.skipped, []);
  assert.equal(checkRevocation(node(leaf), both, NOW, 'refuse'), 'revoked'); // before: the newer ARL decided, 'ok'
  assert.equal(checkChainRevocation(node(interLeaf), [], both, NOW, 'refuse', 'chain'), 'revoked'); // the ARL revokes the CA
  // The ARL alone: a leaf of the root is checked against no CRL (as a CA without one), never against the ARL.
  assert.equal(checkRevocation(node(leaf), index([rawCrl(root, [leafSerial], { exts: [idpExtension('8201ff')] })], [root]), NOW, 'refuse'), 'ok');
  // onlyContainsUserCerts: decides leaves, never a CA certificate.
  const userOnly = index([rawCrl(root, [leafSerial, interSerial], { exts: [idpExtension('8101ff')] })], [root, inter2]);
  assert.equal(checkRevocation(node(leaf), userOnly, NOW, 'refuse'), 'revoked');
  assert.equal(checkChainRevocation(node(interLeaf), [], userOnly, NOW, 'refuse', 'chain'), 'ok');
  // Never used: an unprocessed critical extension, a partial scope, attribute certificates only.
  const critical = tlv(0x30, Buffer.from('06032a0304', 'hex'), Buffer.from('0101ff', 'hex'), tlv(0x04, Buffer.from('0500', 'hex')));
  const skipped = index([
    rawCrl(root, [leafSerial], { exts: [critical] }),
    rawCrl(root, [leafSerial], { exts: [idpExtension('83020560')] }),
    rawCrl(root, [leafSerial], { exts: [idpExtension('8501ff')] }),
  ], [root]);
  assert.deepEqual(skipped.skipped.map((s) => s.why), ['critical_extension', 'partial', 'out_of_scope']);
  assert.equal(checkRevocation(node(leaf), skipped, NOW, 'refuse'), 'ok');
});

// ---------------------------------------------------------------------------------------------
// Trust re-check

test('reverifyTrust: ok via an intermediate in client_ca, or via a sent intermediate and the root', async () => {
  const leaf = node(await leafOf(inter));
  assert.equal(reverifyTrust(leaf, [], [node(root), node(inter)], NOW), 'ok');
  assert.equal(reverifyTrust(leaf, [], [node(inter)], NOW), 'ok', 'any client_ca certificate anchors');
  assert.equal(reverifyTrust(leaf, [node(inter)], [node(root)], NOW), 'ok');
  assert.equal(reverifyTrust(node(await leafOf(root)), [], [node(root)], NOW), 'ok');
});

test('reverifyTrust: unknown_ca once the root is removed; inconclusive when the sent chain is not known', async () => {
  const leaf = node(await leafOf(inter));
  assert.equal(reverifyTrust(leaf, [node(inter)], [node(otherRoot)], NOW), 'unknown_ca');
  assert.equal(reverifyTrust(leaf, [node(inter)], [], NOW), 'unknown_ca');
  // Node may not expose what the client sent: the intermediate could be there, so no verdict.
  assert.equal(reverifyTrust(leaf, [], [node(root)], NOW), 'inconclusive');
  // fakeInter has the issuer's name but not its key: the issuer is still absent.
  assert.equal(reverifyTrust(leaf, [], [node(root), node(fakeInter)], NOW), 'inconclusive');
  assert.equal(reverifyTrust(leaf, [node(fakeInter)], [node(root)], NOW), 'unknown_ca');
  // A self-signed certificate that is not trusted lacks nothing: unknown_ca.
  const self = await mint({ subject: 'CN=self' });
  assert.equal(reverifyTrust(node(self), [], [node(root)], NOW), 'unknown_ca');
  // A path through a certificate that is not a CA (basicConstraints CA:FALSE, no keyUsage) does not count.
  const notCa = await mint({ subject: 'CN=Not A CA', issuer: asIssuer(root), keyUsage: false });
  const underNotCa = await mint({ subject: 'CN=under-not-ca', issuer: notCa.signer });
  assert.equal(reverifyTrust(node(underNotCa), [node(notCa)], [node(root)], NOW), 'unknown_ca');
});

test('reverifyTrust: an expired leaf or intermediate on the path is expired; not yet valid is inconclusive', async () => {
  const expiredLeaf = await mint({ subject: 'CN=old', issuer: asIssuer(inter), notBefore: new Date(NOW - 10 * DAY), notAfter: new Date(NOW - DAY) });
  assert.equal(reverifyTrust(node(expiredLeaf), [], [node(root), node(inter)], NOW), 'expired');
  const oldInter = await mint({ subject: 'CN=Old Inter', issuer: asIssuer(root), ca: true, notBefore: new Date(NOW - 10 * DAY), notAfter: new Date(NOW - DAY) });
  const leaf = await mint({ subject: 'CN=under-old', issuer: oldInter.signer, notBefore: new Date(NOW - 9 * DAY) });
  assert.equal(reverifyTrust(node(leaf), [node(oldInter)], [node(root)], NOW), 'expired');
  assert.equal(reverifyTrust(node(leaf), [node(oldInter)], [node(root)], NOW - 5 * DAY), 'ok', 'the same path while it was valid');
  const future = await mint({ subject: 'CN=future', issuer: asIssuer(inter), notBefore: new Date(NOW + DAY) });
  assert.equal(reverifyTrust(node(future), [], [node(root), node(inter)], NOW), 'inconclusive');
});

test('reverifyTrust: two cross-signed CAs do not loop, and a dead end backtracks to the cross-signed copy', async () => {
  const a = await generateKeyPair();
  const b = await generateKeyPair();
  const aByB = await mint({ subject: 'CN=A', keys: a, issuer: { name: 'CN=B', keys: b }, ca: true });
  const bByA = await mint({ subject: 'CN=B', keys: b, issuer: { name: 'CN=A', keys: a }, ca: true });
  const leaf = node(await mint({ subject: 'CN=in-loop', issuer: { name: 'CN=A', keys: a } }));
  assert.equal(reverifyTrust(leaf, [node(aByB), node(bByA)], [node(root)], NOW), 'unknown_ca');
  assert.equal(reverifyTrust(leaf, [node(bByA), node(aByB)], [node(otherRoot)], NOW), 'unknown_ca');

  // One intermediate key, two certificates: under a removed root (sent first) and under the root.
  const k = await generateKeyPair();
  const gone = await createCa({ subject: [['CN', 'Gone Root']] });
  const viaGone = await mint({ subject: 'CN=X Inter', keys: k, issuer: asIssuer(gone), ca: true });
  const viaRoot = await mint({ subject: 'CN=X Inter', keys: k, issuer: asIssuer(root), ca: true });
  const xLeaf = node(await mint({ subject: 'CN=x', issuer: { name: 'CN=X Inter', keys: k } }));
  assert.equal(reverifyTrust(xLeaf, [node(viaGone), node(viaRoot)], [node(root)], NOW), 'ok');
  assert.equal(reverifyTrust(xLeaf, [node(viaGone)], [node(root)], NOW), 'unknown_ca');
});

test('reverifyTrust: paths of up to 8 certificates are followed; longer ones and runaway searches are inconclusive', async () => {
  // root → Deep 1 → … → Deep 7; `signers[i]` signs under Deep i (0: the root); `sent` is Deep 7 … Deep 1.
  const signers: Signer[] = [asIssuer(root)];
  const sent: X509Certificate[] = [];
  let parent = asIssuer(root);
  for (let i = 1; i <= 7; i++) {
    const c = await mint({ subject: `CN=Deep ${i}`, issuer: parent, ca: true });
    parent = c.signer;
    signers.push(parent);
    sent.unshift(node(c));
  }
  const under = async (depth: number): Promise<X509Certificate> => {
    const issuer = signers[depth];
    assert.ok(issuer !== undefined);
    return node(await mint({ subject: `CN=leaf-${depth}`, issuer }));
  };
  // leaf + Deep 6 … Deep 1 + root = 8 certificates.
  assert.equal(reverifyTrust(await under(6), sent.slice(1), [node(root)], NOW), 'ok');
  assert.equal(reverifyTrust(await under(7), sent, [node(root)], NOW), 'inconclusive');
  assert.equal(reverifyTrust(await under(7), sent, [node(root), sent[0] as X509Certificate], NOW), 'ok');

  // 40 copies of a dead-end intermediate exhaust the signature budget instead of the CPU.
  const k = await generateKeyPair();
  const gone = await createCa({ subject: [['CN', 'Gone Root']] });
  const copies = await Promise.all(Array.from({ length: 40 }, () => mint({ subject: 'CN=Copy', keys: k, issuer: asIssuer(gone), ca: true })));
  const leaf = node(await mint({ subject: 'CN=c', issuer: { name: 'CN=Copy', keys: k } }));
  assert.equal(reverifyTrust(leaf, copies.map(node), [node(root)], NOW), 'inconclusive');
  assert.equal(reverifyTrust(leaf, copies.slice(0, 5).map(node), [node(root)], NOW), 'unknown_ca');
});
