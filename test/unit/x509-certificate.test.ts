/**
 * src/x509/certificate.ts reads the CA flag, key usage, authority key id and validity from the DER
 * where tls/checks.ts used to ask @peculiar/x509: both readings must agree on every certificate the
 * checks see (roots, intermediates, leaves, EC and RSA, with and without the extensions).
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import {
  authorityKeyId, isCa, isSelfSigned, issuedBy, keyUsageOf, notAfter, notBefore, sameCertificate, serialOf,
} from '../../dist/x509/certificate.js';
import { createCa, createLeaf, generateKeyPair, x509, type Issued } from '../../dist/pki/x509.js';

let certs: Array<{ name: string; issued: { cert: x509.X509Certificate } }>;
let root: Issued;
let inter: Issued;

before(async () => {
  root = await createCa({ subject: [['CN', 'X Root']] });
  inter = await createCa({ subject: [['CN', 'X Inter']], issuer: root, keyType: 'rsa' });
  const leaf = await createLeaf({ issuer: inter, subject: [['CN', 'x-leaf']], usage: 'server', san: { dns: ['x'] } });
  // No keyUsage, no basicConstraints, no key identifiers: every reader's "absent" answer.
  const keys = await generateKeyPair();
  const bare = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01', name: 'CN=bare', keys, notBefore: new Date('2026-01-01T00:00:00Z'), notAfter: new Date('2051-01-01T00:00:00Z'),
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
  });
  // keyUsage keyCertSign without cRLSign, and CA:TRUE without keyCertSign.
  const signOnly = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '02', name: 'CN=sign-only', keys, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: [new x509.BasicConstraintsExtension(true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign)],
  });
  const noSign = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '03', name: 'CN=no-sign', keys, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: [new x509.BasicConstraintsExtension(true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.decipherOnly)],
  });
  certs = [
    { name: 'root', issued: root }, { name: 'intermediate (RSA)', issued: inter }, { name: 'leaf', issued: leaf },
    { name: 'bare', issued: { cert: bare } }, { name: 'sign-only', issued: { cert: signOnly } }, { name: 'no-sign', issued: { cert: noSign } },
  ];
});

const node = (c: { cert: x509.X509Certificate }): X509Certificate => new X509Certificate(Buffer.from(c.cert.rawData));

test('CA flag, key usage, authority key id and validity agree with @peculiar/x509', () => {
  for (const { name, issued } of certs) {
    const p = issued.cert;
    const n = node(issued);
    assert.equal(isCa(n), p.getExtension(x509.BasicConstraintsExtension)?.ca === true, `${name}: CA flag`);
    const usages = p.getExtension(x509.KeyUsagesExtension)?.usages;
    assert.deepEqual(keyUsageOf(n), usages === undefined ? undefined : {
      keyCertSign: (usages & x509.KeyUsageFlags.keyCertSign) !== 0, cRLSign: (usages & x509.KeyUsageFlags.cRLSign) !== 0,
    }, `${name}: key usage`);
    const aki = p.getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId;
    assert.equal(authorityKeyId(n), aki === undefined ? undefined : (aki.toUpperCase().match(/../g) ?? []).join(':'), `${name}: AKI`);
    assert.equal(notBefore(n).getTime(), p.notBefore.getTime(), `${name}: notBefore`);
    assert.equal(notAfter(n).getTime(), p.notAfter.getTime(), `${name}: notAfter`);
    assert.equal(serialOf(n), n.serialNumber, `${name}: serial`);
  }
});

test('issuedBy wants the issuer name and its signature; sameCertificate compares the DER', () => {
  const [r, i, l] = [node(root), node(inter), node(certs[2]!.issued)];
  assert.ok(issuedBy(i, r) && issuedBy(l, i) && isSelfSigned(r));
  assert.ok(!issuedBy(l, r) && !issuedBy(r, i) && !isSelfSigned(i));
  assert.ok(sameCertificate(r, node(root)) && !sameCertificate(r, i));
});
