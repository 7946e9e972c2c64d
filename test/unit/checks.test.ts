import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { KeyObject, sign, X509Certificate } from 'node:crypto';
import { checkClientCas } from '../../dist/tls/checks/client-cas.js';
import { checkCrls } from '../../dist/tls/checks/crls.js';
import { checkLeaf } from '../../dist/tls/checks/leaf.js';
import type { CertRef, CrlRef } from '../../dist/tls/checks/refs.js';
import { checkChainValidity, checkServerChain } from '../../dist/tls/checks/server-chain.js';
import { createCa, createCrl, createLeaf, generateKeyPair, x509, type Issued } from '../../dist/pki/x509.js';
import type { Problem } from '../../dist/errors.js';
import { readCertificate } from '../../dist/x509/der.js';
import { parseCrl } from '../../dist/x509/crl.js';
import { oid, tlv } from '../helpers/openssl.js';

const DAY = 86_400_000;
const BUNDLE = '/etc/certgate/server.pem';
const CA_FILE = '/etc/certgate/client-ca.pem';
const CRL_FILE = '/etc/certgate/crl.pem';

interface Pki {
  root: Issued; inter: Issued; leaf: Issued; otherRoot: Issued;
  /** Same name as `inter`, different key. */
  fakeInter: Issued;
  clientLeaf: Issued;
}
let pki: Pki;

before(async () => {
  const root = await createCa({ subject: [['O', 'certgate test'], ['CN', 'Checks Root']] });
  const inter = await createCa({ subject: [['O', 'certgate test'], ['CN', 'Checks Inter']], issuer: root });
  const fakeInter = await createCa({ subject: [['O', 'certgate test'], ['CN', 'Checks Inter']], issuer: root });
  const leaf = await createLeaf({ issuer: inter, subject: [['CN', 'localhost']], usage: 'server', san: { dns: ['localhost', '*.example.com'], ip: ['127.0.0.1'] } });
  const otherRoot = await createCa({ subject: [['CN', 'Other Root']] });
  const clientLeaf = await createLeaf({ issuer: inter, subject: [['CN', 'alice']], usage: 'client' });
  pki = { root, inter, leaf, otherRoot, fakeInter, clientLeaf };
});

const node = (i: Issued | { cert: x509.X509Certificate }): X509Certificate => new X509Certificate(Buffer.from(i.cert.rawData));
const at = (i: Issued | { cert: x509.X509Certificate }, block?: number, file = BUNDLE): CertRef =>
  ({ cert: node(i), file, ...(block !== undefined && { block }) });
const keyRef = (i: Issued, block?: number, file = BUNDLE) => ({ key: KeyObject.from(i.privateKey), file, ...(block !== undefined && { block }) });
const codes = (ps: readonly Problem[]): string[] => ps.map((p) => `${p.severity}:${p.code}`).sort();
const find = (ps: readonly Problem[], code: string): Problem => {
  const p = ps.find((x) => x.code === code);
  assert.ok(p, `expected ${code} in ${JSON.stringify(ps.map((x) => x.code))}`);
  return p;
};
/** AA:BB:… of a CA's subject key id, as the messages print authority key ids. */
const skiOf = (i: Issued): string => {
  const ext = i.cert.getExtension(x509.SubjectKeyIdentifierExtension);
  assert.ok(ext);
  return (ext.keyId.toUpperCase().match(/../g) ?? []).join(':');
};

// ---- server chain ---------------------------------------------------------------------------

test('finds the leaf anywhere and orders the chain by issuer links; warns that the file was reordered', () => {
  // block 1 = root, 2 = key, 3 = inter, 4 = leaf
  const certs = [at(pki.root, 1), at(pki.inter, 3), at(pki.leaf, 4)];
  const r = checkServerChain({ key: keyRef(pki.leaf, 2), certs });
  assert.equal(r.leaf, certs[2]);
  assert.deepEqual(r.chain, [certs[1], certs[0]]);
  assert.deepEqual(codes(r.problems), ['warning:CG_CHAIN_REORDERED']);
  const p = find(r.problems, 'CG_CHAIN_REORDERED');
  assert.equal(p.file, BUNDLE);
  assert.match(p.message, /CN=localhost \(block 4\) → CN=Checks Inter \(block 3\) → CN=Checks Root \(block 1\)/);
});

test('a leaf-first chain ending at its root has no findings', () => {
  const certs = [at(pki.leaf, 2), at(pki.inter, 3), at(pki.root, 4)];
  const r = checkServerChain({ key: keyRef(pki.leaf, 1), certs });
  assert.deepEqual(r.problems, []);
  assert.deepEqual(r.chain, [certs[1], certs[2]]);
});

test('leaf + intermediate without the root: at most info, never a warning', () => {
  const certs = [at(pki.leaf, 2), at(pki.inter, 3)];
  const withRoot = checkServerChain({ key: keyRef(pki.leaf, 1), certs, knownIssuers: [at(pki.root, 1, CA_FILE)] });
  assert.deepEqual(withRoot.problems, []);
  const unknown = checkServerChain({ key: keyRef(pki.leaf, 1), certs });
  assert.deepEqual(codes(unknown.problems), ['info:CG_CHAIN_INCOMPLETE']);
  assert.match(find(unknown.problems, 'CG_CHAIN_INCOMPLETE').message, /CN=Checks Root/);
});

test('key matching no certificate is CG_KEY_MISMATCH naming key and certificate', () => {
  const r = checkServerChain({ key: keyRef(pki.otherRoot, undefined, '/etc/certgate/server.key'), certs: [at(pki.leaf, undefined, '/etc/certgate/server.crt')] });
  assert.deepEqual(codes(r.problems), ['error:CG_KEY_MISMATCH']);
  const p = find(r.problems, 'CG_KEY_MISMATCH');
  assert.equal(p.file, '/etc/certgate/server.key');
  assert.match(p.message, /private key \(in server\.key\) does not match the certificate CN=localhost \(in server\.crt\)/);
  assert.equal(r.leaf, undefined);
});

test('missing intermediate: warning naming the missing issuer CN and its authority key id', () => {
  const r = checkServerChain({ key: keyRef(pki.leaf, 1), certs: [at(pki.leaf, 2)] });
  assert.deepEqual(codes(r.problems), ['warning:CG_CHAIN_INCOMPLETE']);
  const p = find(r.problems, 'CG_CHAIN_INCOMPLETE');
  assert.match(p.message, /CN=Checks Inter/);
  assert.ok(p.message.includes(`authority key id ${skiOf(pki.inter)}`), p.message);
  assert.match(p.hint ?? '', /CN=Checks Inter/);
});

test('intermediate present only in client_ca: warning that the server chain lacks it', () => {
  const r = checkServerChain({ key: keyRef(pki.leaf), certs: [at(pki.leaf)], knownIssuers: [at(pki.root, 1, CA_FILE), at(pki.inter, 2, CA_FILE)] });
  assert.deepEqual(codes(r.problems), ['warning:CG_CHAIN_INCOMPLETE']);
  assert.match(find(r.problems, 'CG_CHAIN_INCOMPLETE').message, /client-ca\.pem \(client_ca\)/);
});

test('leaf issued directly by a root in client_ca: no chain finding', () => {
  const direct = checkServerChain({ key: keyRef(pki.inter), certs: [at(pki.inter)], knownIssuers: [at(pki.root, undefined, CA_FILE)] });
  assert.deepEqual(direct.problems, []);
});

test('an intermediate of the same name but another key is a broken link (error)', () => {
  const r = checkServerChain({ key: keyRef(pki.leaf, 1), certs: [at(pki.leaf, 2), at(pki.fakeInter, 3)] });
  assert.deepEqual(codes(r.problems), ['error:CG_CHAIN_BROKEN']);
  assert.match(find(r.problems, 'CG_CHAIN_BROKEN').message, /CN=localhost \(block 2\) names CN=Checks Inter as its issuer, but CN=Checks Inter \(block 3\)/);
  assert.deepEqual(r.chain, []);
});

test('a certificate from another chain is an error (the bundle mixes chains); a duplicate is a warning', () => {
  const certs = [at(pki.leaf, 1), at(pki.inter, 2), at(pki.otherRoot, 3), at(pki.inter, 4)];
  const r = checkServerChain({ key: keyRef(pki.leaf, 5), certs, knownIssuers: [at(pki.root, 1, CA_FILE)] });
  assert.deepEqual(codes(r.problems), ['error:CG_CHAIN_BROKEN', 'warning:CG_CHAIN_BROKEN']);
  assert.deepEqual(r.chain, [certs[1]]);
  assert.ok(r.problems.some((p) => /CN=Other Root \(block 3\) is not part of the chain/.test(p.message)));
  assert.ok(r.problems.some((p) => /block 4\) is a duplicate of \(block 2\)/.test(p.message)));
});

test('expired intermediates are warnings', () => {
  const now = new Date(Date.now() + 4000 * DAY);
  assert.deepEqual(codes(checkChainValidity([at(pki.inter, 2)], now)), ['warning:CG_CERT_EXPIRED']);
  assert.deepEqual(checkChainValidity([at(pki.inter, 2)], new Date()), []);
});

// ---- leaf ------------------------------------------------------------------------------------

test('leaf validity: expired, not yet valid, expiring soon, otherwise info with the day count', async () => {
  const leaf = at(pki.leaf, 2);
  const end = pki.leaf.cert.notAfter;
  const start = pki.leaf.cert.notBefore;
  const expired = checkLeaf(leaf, new Date(end.getTime() + DAY));
  assert.deepEqual(codes(expired), ['error:CG_CERT_EXPIRED']);
  assert.match(find(expired, 'CG_CERT_EXPIRED').message, /CN=localhost \(block 2\) expired on/);
  assert.deepEqual(codes(checkLeaf(leaf, new Date(start.getTime() - 1000))), ['error:CG_CERT_NOT_YET_VALID']);
  const soon = checkLeaf(leaf, new Date(end.getTime() - 3 * DAY - 1000));
  assert.deepEqual(codes(soon), ['warning:CG_CERT_EXPIRES_SOON']);
  assert.match(find(soon, 'CG_CERT_EXPIRES_SOON').message, /expires in 3 days/);
  const fine = checkLeaf(leaf, new Date(end.getTime() - 100 * DAY - 1000));
  assert.deepEqual(codes(fine), ['info:CG_CERT_VALIDITY']);
  assert.match(find(fine, 'CG_CERT_VALIDITY').message, /expires in 100 days/);
});

test('a CA certificate as leaf is an error; so is an EKU without serverAuth', () => {
  const asLeaf = checkLeaf(at(pki.inter), new Date());
  assert.ok(codes(asLeaf).includes('error:CG_CERT_IS_CA'));
  const client = checkLeaf(at(pki.clientLeaf), new Date());
  assert.ok(codes(client).includes('error:CG_CERT_EKU'));
  assert.match(find(client, 'CG_CERT_EKU').message, /clientAuth without serverAuth/);
});

test('listen host coverage by SAN (DNS names only, wildcards honoured)', () => {
  const leaf = at(pki.leaf);
  const now = new Date();
  const has = (host: string): boolean => checkLeaf(leaf, now, host).some((p) => p.code === 'CG_CERT_NO_SAN');
  assert.equal(has('localhost'), false);
  assert.equal(has('api.example.com'), false);
  assert.equal(has('example.org'), true);
  assert.equal(has('0.0.0.0'), false);
  assert.equal(has('::'), false);
  assert.equal(has('10.1.2.3'), false);
  assert.match(find(checkLeaf(leaf, now, 'example.org'), 'CG_CERT_NO_SAN').message, /example\.org is not covered .*DNS:localhost/);
});

test('a leaf without any subjectAltName is a warning', async () => {
  const noSan = await createLeaf({ issuer: pki.inter, subject: [['CN', 'nosan']], usage: 'server' });
  assert.ok(codes(checkLeaf(at(noSan), new Date())).includes('warning:CG_CERT_NO_SAN'));
});

// ---- client CAs --------------------------------------------------------------------------------

test('client_ca: empty, non-CA, CA without keyCertSign', async () => {
  const now = new Date();
  assert.deepEqual(codes(checkClientCas({ cas: [], file: CA_FILE, now })), ['error:CG_CA_EMPTY']);

  const nonCa = checkClientCas({ cas: [at(pki.root, 1, CA_FILE), at(pki.clientLeaf, 2, CA_FILE)], file: CA_FILE, now });
  assert.deepEqual(codes(nonCa), ['error:CG_CA_NOT_CA']);
  assert.match(find(nonCa, 'CG_CA_NOT_CA').message, /CN=alice \(block 2\) is not a CA/);
  assert.equal(find(nonCa, 'CG_CA_NOT_CA').file, CA_FILE);

  const keys = await generateKeyPair();
  const noSign = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01', name: 'CN=No KeyCertSign CA', keys, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    notBefore: new Date(Date.now() - DAY), notAfter: new Date(Date.now() + DAY),
    extensions: [new x509.BasicConstraintsExtension(true, undefined, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true)],
  });
  const r = checkClientCas({ cas: [at({ cert: noSign }, undefined, CA_FILE)], file: CA_FILE, now });
  assert.ok(r.some((p) => p.code === 'CG_CA_NOT_CA' && /without keyCertSign/.test(p.message)), JSON.stringify(r));
});

test('client_ca: an intermediate without its root is an error naming the root', () => {
  const now = new Date();
  const r = checkClientCas({ cas: [at(pki.inter, undefined, CA_FILE)], file: CA_FILE, now });
  assert.deepEqual(codes(r), ['error:CG_CA_NO_ROOT']);
  assert.match(find(r, 'CG_CA_NO_ROOT').message, /CN=Checks Inter is an intermediate CA and its root CN=Checks Root/);
  assert.deepEqual(checkClientCas({ cas: [at(pki.inter, 1, CA_FILE), at(pki.root, 2, CA_FILE)], file: CA_FILE, now }), []);
});

test('client_ca holding only the server\'s own issuers is info; another CA silences it', () => {
  const now = new Date();
  const serverChain = [node(pki.leaf), node(pki.inter)];
  const own = checkClientCas({ cas: [at(pki.root, 1, CA_FILE), at(pki.inter, 2, CA_FILE)], file: CA_FILE, now, serverChain });
  assert.deepEqual(codes(own), ['info:CG_CA_SELF_ONLY']);
  const mixed = checkClientCas({ cas: [at(pki.root, 1, CA_FILE), at(pki.otherRoot, 2, CA_FILE)], file: CA_FILE, now, serverChain });
  assert.deepEqual(mixed, []);
});

// ---- CRLs ---------------------------------------------------------------------------------------

const crlRef = (crl: x509.X509Crl, block?: number): CrlRef =>
  ({ crl: parseCrl(Buffer.from(crl.rawData)), file: CRL_FILE, ...(block !== undefined && { block }) });

test('CRLs: one current CRL per client CA has no findings', async () => {
  const cas = [at(pki.root, 1, CA_FILE), at(pki.inter, 2, CA_FILE)];
  const crls = [crlRef(await createCrl({ issuer: pki.root }), 1), crlRef(await createCrl({ issuer: pki.inter }), 2)];
  const r = await checkCrls({ crls, cas, file: CRL_FILE, now: new Date() });
  assert.deepEqual(r.problems, []);
  assert.equal(r.issuers.get(crls[1]!), cas[1]);
});

test('CRLs: unknown issuer, same name with another key, missing CA coverage', async () => {
  const cas = [at(pki.root, 1, CA_FILE), at(pki.inter, 2, CA_FILE)];
  const crls = [
    crlRef(await createCrl({ issuer: pki.root }), 1),
    crlRef(await createCrl({ issuer: pki.otherRoot }), 2),
    crlRef(await createCrl({ issuer: pki.fakeInter }), 3),
  ];
  const r = await checkCrls({ crls, cas, file: CRL_FILE, now: new Date() });
  assert.deepEqual(codes(r.problems), ['error:CG_CRL_ISSUER', 'error:CG_CRL_ISSUER', 'error:CG_CRL_MISSING_CA']);
  assert.ok(r.problems.some((p) => /\(block 2\) of CN=Other Root is issued by .*Other Root, which is not in tls\.client_ca/.test(p.message)));
  assert.ok(r.problems.some((p) => /\(block 3\) of CN=Checks Inter does not verify with the key of CN=Checks Inter/.test(p.message)));
  const missing = find(r.problems, 'CG_CRL_MISSING_CA');
  assert.match(missing.message, /client CA CN=Checks Inter \(client-ca\.pem block 2\) has no CRL/);
  assert.equal(missing.file, CRL_FILE);
});

test('CRLs: past nextUpdate is an error, unless another current CRL of that CA exists; future thisUpdate is an error', async () => {
  const cas = [at(pki.root, undefined, CA_FILE)];
  const now = new Date();
  const stale = crlRef(await createCrl({ issuer: pki.root, thisUpdate: new Date(now.getTime() - 10 * DAY), nextUpdate: new Date(now.getTime() - DAY) }), 1);
  const r = await checkCrls({ crls: [stale], cas, file: CRL_FILE, now });
  assert.deepEqual(codes(r.problems), ['error:CG_CRL_EXPIRED']);
  assert.match(r.problems[0]!.message, /CRL \(block 1\) of CN=Checks Root expired/);

  const fresh = crlRef(await createCrl({ issuer: pki.root }), 2);
  const both = await checkCrls({ crls: [stale, fresh], cas, file: CRL_FILE, now });
  assert.deepEqual(codes(both.problems), ['warning:CG_CRL_EXPIRED']);

  const future = crlRef(await createCrl({ issuer: pki.root, thisUpdate: new Date(now.getTime() + DAY) }));
  assert.deepEqual(codes((await checkCrls({ crls: [future], cas, file: CRL_FILE, now })).problems), ['error:CG_CRL_NOT_YET_VALID']);
});

/**
 * issue 14: `check` called a config "usable" while it refused every client of a CA. A finding whose effect is
 * "every client of that CA is refused" is an error (check exits 1) — but one that still loads (`loadable`):
 * a stale CRL must never stop the server or block a server-certificate rotation.
 */
test('a stale CRL that refuses its CA\'s clients is a loadable error (leaf + refuse, chain); a warning under crl_stale: allow or with a current CRL beside it', async () => {
  const cas = [at(pki.root, undefined, CA_FILE)];
  const now = new Date();
  const stale = crlRef(await createCrl({ issuer: pki.root, thisUpdate: new Date(now.getTime() - 10 * DAY), nextUpdate: new Date(now.getTime() - DAY) }), 1);
  const future = crlRef(await createCrl({ issuer: pki.root, thisUpdate: new Date(now.getTime() + DAY) }), 1);
  const fresh = crlRef(await createCrl({ issuer: pki.root }), 2);
  const loadable = (ps: readonly Problem[]): string[] => ps.map((p) => `${p.severity}:${p.code}${p.loadable === true ? ':loadable' : ''}`).sort();
  for (const crl of [stale, future]) {
    const code = crl === stale ? 'CG_CRL_EXPIRED' : 'CG_CRL_NOT_YET_VALID';
    assert.deepEqual(loadable((await checkCrls({ crls: [crl], cas, file: CRL_FILE, now, mode: 'leaf', stale: 'refuse' })).problems), [`error:${code}:loadable`],
      'leaf + refuse: certgate refuses that CA\'s clients (crl_expired): an error for check, but the material loads');
    assert.deepEqual(loadable((await checkCrls({ crls: [crl], cas, file: CRL_FILE, now, mode: 'chain', stale: 'refuse' })).problems), [`error:${code}:loadable`],
      'chain: OpenSSL refuses that CA\'s clients: an error, and still loadable');
    assert.deepEqual(loadable((await checkCrls({ crls: [crl], cas, file: CRL_FILE, now, mode: 'leaf', stale: 'allow' })).problems), [`warning:${code}`],
      'leaf + allow: the last CRL keeps being used, nobody is refused');
  }
  assert.deepEqual(loadable((await checkCrls({ crls: [stale, fresh], cas, file: CRL_FILE, now, mode: 'leaf', stale: 'refuse' })).problems), ['warning:CG_CRL_EXPIRED']);
});

test('an expired client CA refuses every client it issued: a loadable error; a current certificate of the same CA beside it makes it a warning', async () => {
  const now = new Date();
  const old = await createCa({ subject: [['CN', 'Checks Expiring Root']], notBefore: new Date(now.getTime() - 30 * DAY), notAfter: new Date(now.getTime() - DAY) });
  const expired = checkClientCas({ cas: [at(old, 1, CA_FILE)], file: CA_FILE, now });
  assert.deepEqual(expired.map((p) => `${p.severity}:${p.code}:${String(p.loadable)}`), ['error:CG_CERT_EXPIRED:true']);
  assert.match(find(expired, 'CG_CERT_EXPIRED').message, /clients it issued are refused/);
  // The CA renewed its certificate (same name, same key): OpenSSL picks the current one.
  const renewed = await x509.X509CertificateGenerator.create({
    serialNumber: '0a', subject: old.cert.subject, issuer: old.cert.subject, publicKey: old.publicKey, signingKey: old.privateKey,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' }, notBefore: new Date(now.getTime() - DAY), notAfter: new Date(now.getTime() + 365 * DAY),
    extensions: [new x509.BasicConstraintsExtension(true, undefined, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true)],
  });
  const twin = checkClientCas({ cas: [at(old, 1, CA_FILE), at({ cert: renewed }, 2, CA_FILE)], file: CA_FILE, now });
  assert.deepEqual(codes(twin), ['warning:CG_CERT_EXPIRED']);
  assert.equal(find(twin, 'CG_CERT_EXPIRED').loadable, undefined);
});

test('CRLs: an RSA CA\'s CRL signed with SHA-384 or SHA-512 verifies (the check once bound the CA key to SHA-256 and called it foreign)', async () => {
  const rsaCa = await createCa({ subject: [['CN', 'Checks RSA Root']], keyType: 'rsa' });
  const cas = [at(rsaCa, undefined, CA_FILE)];
  const now = new Date();
  const time = (d: Date): Buffer => tlv(0x17, Buffer.from(`${d.toISOString().slice(2, 19).replace(/[-T:]/g, '')}Z`, 'latin1'));
  for (const [hash, algorithm] of [['sha384', '1.2.840.113549.1.1.12'], ['sha512', '1.2.840.113549.1.1.13']] as const) {
    const alg = tlv(0x30, oid(algorithm), [0x05, 0x00]);
    const tbs = tlv(0x30, [0x02, 0x01, 0x01], alg, readCertificate(node(rsaCa).raw).subject,
      time(new Date(now.getTime() - DAY)), time(new Date(now.getTime() + DAY)));
    const der = tlv(0x30, tbs, alg, tlv(0x03, [0], sign(hash, tbs, KeyObject.from(rsaCa.privateKey))));
    const r = await checkCrls({ crls: [crlRef(new x509.X509Crl(new Uint8Array(der)))], cas, file: CRL_FILE, now });
    assert.deepEqual(r.problems, [], hash);
  }
});

test('CRLs: a root whose only CRL covers CA certificates (onlyContainsCACerts) and that issued a CA of client_ca is a warning, not a missing CRL', async () => {
  const cas = [at(pki.root, 1, CA_FILE), at(pki.inter, 2, CA_FILE)];
  const plain = crlRef(await createCrl({ issuer: pki.root }), 1);
  const noScope = { distributionPoint: false, onlyUserCerts: false, onlyAttributeCerts: false, onlySomeReasons: false, indirect: false };
  const arl: CrlRef = { ...plain, crl: { ...plain.crl, idp: { ...noScope, onlyCaCerts: true } } };
  const interCrl = crlRef(await createCrl({ issuer: pki.inter }), 2);
  for (const mode of ['chain', 'leaf'] as const) {
    const r = await checkCrls({ crls: [arl, interCrl], cas, file: CRL_FILE, now: new Date(), mode });
    assert.deepEqual(codes(r.problems), ['warning:CG_CRL_SCOPE'], mode);
    assert.match(r.problems[0]!.message, /covers CA certificates only \(onlyContainsCACerts\) and is the only CRL of CN=Checks Root/);
  }
  // Without the intermediate in client_ca, the root looks like a CA that issues clients: chain mode misses its CRL.
  const alone = await checkCrls({ crls: [arl], cas: [cas[0]!], file: CRL_FILE, now: new Date(), mode: 'chain' });
  assert.deepEqual(codes(alone.problems), ['error:CG_CRL_MISSING_CA']);
  const leaf = await checkCrls({ crls: [arl], cas: [cas[0]!], file: CRL_FILE, now: new Date(), mode: 'leaf' });
  assert.deepEqual(leaf.problems.map((p) => `${p.severity}:${p.code}:${String(p.loadable)}`), ['error:CG_CRL_SCOPE:true']);
});
