/**
 * inspectTls/loadTls over real files: the shared test PKI (test/helpers/pki.ts) plus a few
 * certificates minted here for the cases it does not cover. Handshakes run on 127.0.0.1:0.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createPrivateKey, KeyObject, webcrypto, X509Certificate } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { inspectTls, loadTls, type TlsMaterial } from '../../dist/tls/material.js';
import { parsePem } from '../../dist/x509/pem.js';
import { CertgateError, type Problem } from '../../dist/errors.js';
import type { TlsConfig } from '../../dist/config/types.js';
import { certToPem, createCrl, crlToPem, importSigningKey, parseCert, x509 } from '../../dist/pki/x509.js';
import { createTestPki, type TestCa, type TestCert, type TestPki } from '../helpers/pki.js';

const DAY = 86_400_000;
const ROOT_CN = 'CN=certgate test root CA';
const INTER_CN = 'CN=certgate test intermediate CA';
let pki: TestPki;
let dir: string;
let n = 0;

before(async () => {
  pki = await createTestPki();
  dir = mkdtempSync(path.join(os.tmpdir(), 'certgate-material-'));
});

after(() => {
  pki.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

/** Writes a file (mode 0600 unless given) and returns its absolute path. */
function file(name: string, content: string | Buffer, mode = 0o600): string {
  const p = path.join(dir, `${n++}-${name}`);
  writeFileSync(p, content);
  chmodSync(p, mode);
  return p;
}

function config(over: Partial<TlsConfig> & { client_ca: string }): TlsConfig {
  // chain mode: these tests assert OpenSSL's CRL_CHECK_ALL constraints (a CA without a CRL is an error).
  return { client_auth: 'require', min_version: 'TLSv1.2', crl_mode: 'chain', crl_stale: 'refuse', watch: false, recheck_interval_ms: 30_000, allow_insecure_key_permissions: false, ...over };
}

const server = (): TestCert => pki.serverBundle;
const inter = (): TestCa => pki.intermediate;
/** The usual good setup: bundle key + leaf + intermediate, client_ca root + intermediate, both CRLs. */
const good = (): { bundle: string; client_ca: string; crl: string } =>
  ({ bundle: server().pemPath, client_ca: pki.clientCa.path, crl: pki.crlPath });

/** A CRL of `ca` (the helper's root/intermediate/otherRoot), as PEM. */
async function crlOf(ca: TestCa, over: { thisUpdate?: Date; nextUpdate?: Date } = {}): Promise<string> {
  const issuer = { cert: parseCert(ca.cert), privateKey: await importSigningKey(ca.key) };
  return crlToPem(await createCrl({ issuer, ...over }));
}

const errors = (ps: readonly Problem[]): string[] => ps.filter((p) => p.severity === 'error').map((p) => p.code);
const find = (ps: readonly Problem[], code: string): Problem => {
  const p = ps.find((x) => x.code === code);
  assert.ok(p, `expected ${code} in ${JSON.stringify(ps.map((x) => `${x.severity}:${x.code}: ${x.message}`), null, 1)}`);
  return p;
};

/** Serves `m` and connects a client that trusts only the root; reports what each side concluded. */
async function handshake(m: TlsMaterial, client: TestCert): Promise<{ serverAuthorized: boolean; serverError: string | undefined; clientAuthorized: boolean; clientError: string | undefined }> {
  const srv = tls.createServer({
    key: m.key, cert: m.cert, ca: m.ca, ...(m.crl && { crl: m.crl }), ...(m.passphrase !== undefined && { passphrase: m.passphrase }),
    requestCert: true, rejectUnauthorized: false,
  });
  const seen = new Promise<{ authorized: boolean; error: string | undefined }>((resolve) => {
    srv.on('secureConnection', (s) => {
      resolve({ authorized: s.authorized, error: s.authorizationError == null ? undefined : String(s.authorizationError) });
      s.end();
    });
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as { port: number }).port;
  try {
    const c = await new Promise<{ authorized: boolean; error: string | undefined }>((resolve, reject) => {
      const sock = tls.connect({
        host: '127.0.0.1', port, servername: 'localhost', ca: pki.root.cert,
        cert: client.cert + inter().cert, key: client.key, rejectUnauthorized: false,
      }, () => {
        resolve({ authorized: sock.authorized, error: sock.authorizationError == null ? undefined : String(sock.authorizationError) });
        sock.end();
      });
      sock.on('error', reject);
    });
    const s = await seen;
    return { serverAuthorized: s.authorized, serverError: s.error, clientAuthorized: c.authorized, clientError: c.error };
  } finally {
    await new Promise((resolve) => srv.close(resolve));
  }
}

// ---- the good path ----------------------------------------------------------------------------

test('a bundle in any block order loads; cert is served leaf-first; every CRL is in force', async () => {
  const bundle = file('server.pem', `subject=${INTER_CN}\r\n${inter().cert}${server().key.replace(/\n/g, '\r\n')}${server().cert}`);
  const { client_ca, crl } = good();
  const { material, problems } = await inspectTls(config({ bundle, client_ca, crl }), { listenHost: 'localhost' });
  assert.deepEqual(errors(problems), []);
  assert.ok(material);
  const reordered = find(problems, 'CG_CHAIN_REORDERED');
  assert.equal(reordered.severity, 'warning');
  assert.equal(reordered.file, bundle);
  assert.ok(reordered.message.includes(`CN=localhost (block 3) → ${INTER_CN} (block 1)`), reordered.message);

  const served = parsePem(material.cert).map((b) => new X509Certificate(b.der));
  assert.deepEqual(served.map((c) => c.fingerprint256), [server().x509.fingerprint256, inter().x509.fingerprint256]);
  assert.equal(material.leaf.fingerprint256, server().x509.fingerprint256);
  assert.deepEqual(material.chain.map((c) => c.fingerprint256), [inter().x509.fingerprint256]);
  assert.deepEqual(material.clientCas.map((c) => c.fingerprint256), [pki.root.x509.fingerprint256, inter().x509.fingerprint256]);
  assert.equal(material.ca.length, 2);
  // crl.pem holds two CRLs; each lands in its own array entry.
  assert.deepEqual(material.crl?.map((c) => parsePem(c).length), [1, 1]);
  assert.deepEqual(material.crls.map((c) => c.issuer.split(', ').at(-1)), [INTER_CN, ROOT_CN]);
  assert.ok(material.crls.every((c) => c.nextUpdate > new Date() && c.thisUpdate < new Date()));
  assert.match(material.digest, /^[0-9a-f]{64}$/);
  assert.ok(material.problems.some((p) => p.code === 'CG_CHAIN_REORDERED'));
  assert.ok(material.problems.every((p) => p.severity !== 'error'));

  // The client trusts only the root and still verifies the server (the intermediate is sent).
  // The server needs both CRLs (CRL_CHECK_ALL): had only the first been loaded, this would be UNABLE_TO_GET_CRL.
  const ok = await handshake(material, pki.clients.good);
  assert.deepEqual(ok, { serverAuthorized: true, serverError: undefined, clientAuthorized: true, clientError: undefined });
  const bad = await handshake(material, pki.clients.revoked);
  assert.equal(bad.serverAuthorized, false);
  assert.equal(bad.serverError, 'CERT_REVOKED');
});

test('cert + key files; the digest follows the bytes of every input', async () => {
  const cert = file('server.crt', server().cert + inter().cert);
  const key = file('server.key', server().key);
  const { client_ca, crl } = good();
  const a = await loadTls(config({ cert, key, client_ca, crl }));
  const b = await loadTls(config({ cert, key, client_ca, crl }));
  assert.equal(a.digest, b.digest);
  const crl2 = file('crl.pem', pki.crlIntermediatePem + await crlOf(pki.root), 0o644);
  const c = await loadTls(config({ cert, key, client_ca, crl: crl2 }));
  assert.notEqual(c.digest, a.digest);
  const d = await loadTls(config({ cert, key, client_ca }));
  assert.notEqual(d.digest, a.digest);
  assert.equal(d.crl, undefined);
  assert.deepEqual(d.crls, []);
});

// ---- key problems -------------------------------------------------------------------------------

test('key that does not belong to the leaf: CG_KEY_MISMATCH naming both; loadTls throws it', async () => {
  const cert = file('server.crt', server().cert);
  const key = file('server.key', pki.otherRoot.key);
  const cfg = config({ cert, key, client_ca: pki.clientCa.path });
  const { material, problems } = await inspectTls(cfg);
  assert.equal(material, undefined);
  assert.deepEqual(errors(problems), ['CG_KEY_MISMATCH']);
  assert.equal(find(problems, 'CG_KEY_MISMATCH').file, key);
  assert.match(find(problems, 'CG_KEY_MISMATCH').message, /CN=localhost \(in .*server\.crt\)/);
  await assert.rejects(loadTls(cfg), (err: unknown) => {
    assert.ok(err instanceof CertgateError);
    assert.equal(err.code, 'CG_KEY_MISMATCH');
    assert.equal(err.file, key);
    assert.equal(err.problems.length, 1);
    return true;
  });
});

test('a missing intermediate is a warning that names the issuer; the material still loads', async () => {
  const bundle = file('server.pem', server().key + server().cert);
  const { material, problems } = await inspectTls(config({ bundle, client_ca: pki.otherRoot.certPath }));
  assert.ok(material);
  const p = find(problems, 'CG_CHAIN_INCOMPLETE');
  assert.equal(p.severity, 'warning');
  assert.equal(p.file, bundle);
  assert.ok(p.message.includes(`${INTER_CN} (authority key id `), p.message);
});

test('encrypted key: without passphrase_file, with a wrong one, with a right one ending in newline(s)', async () => {
  const client_ca = pki.clientCa.path;
  const k = createPrivateKey(server().key);
  const pkcs8 = k.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 's3cret' }) as string;
  const traditional = k.export({ type: 'sec1', format: 'pem', cipher: 'aes-128-cbc', passphrase: 's3cret' }) as string;
  assert.match(traditional, /Proc-Type: 4,ENCRYPTED/);
  for (const keyPem of [pkcs8, traditional]) {
    const bundle = file('server.pem', keyPem + server().cert + inter().cert);

    const none = await inspectTls(config({ bundle, client_ca }));
    assert.deepEqual(errors(none.problems), ['CG_KEY_ENCRYPTED']);
    assert.equal(find(none.problems, 'CG_KEY_ENCRYPTED').file, bundle);
    assert.match(find(none.problems, 'CG_KEY_ENCRYPTED').message, /private key \(block 1\) is encrypted/);

    const wrong = await inspectTls(config({ bundle, client_ca, passphrase_file: file('pass', 'nope\n') }));
    assert.deepEqual(errors(wrong.problems), ['CG_KEY_PASSPHRASE']);
    assert.equal(find(wrong.problems, 'CG_KEY_PASSPHRASE').file, bundle);

    for (const content of ['s3cret\n', 's3cret\r\n\n', 's3cret']) {
      const ok = await inspectTls(config({ bundle, client_ca, passphrase_file: file('pass', content) }));
      assert.deepEqual(errors(ok.problems), [], JSON.stringify(content));
      assert.ok(ok.material);
      assert.equal(ok.material.passphrase, 's3cret');
      assert.match(String(ok.material.key), /ENCRYPTED/);
      // The still-encrypted key + passphrase is what the server gets, and it works.
      assert.equal((await handshake(ok.material, pki.clients.good)).clientAuthorized, true);
    }
  }
});

test('a world-readable key is refused; group-readable 0440 / 0640 pass', async () => {
  const client_ca = pki.clientCa.path;
  const content = server().pem;
  const open = file('server.pem', content, 0o644);
  const r = await inspectTls(config({ bundle: open, client_ca }));
  assert.deepEqual(errors(r.problems), ['CG_KEY_PERMISSIONS']);
  const p = find(r.problems, 'CG_KEY_PERMISSIONS');
  assert.equal(p.file, open);
  assert.match(p.message, /mode 0644/);

  const key = file('server.key', server().key, 0o604);
  const cert = file('server.crt', server().cert + inter().cert, 0o644); // certificates may be public
  const r2 = await inspectTls(config({ cert, key, client_ca }));
  assert.deepEqual(errors(r2.problems), ['CG_KEY_PERMISSIONS']);
  assert.equal(find(r2.problems, 'CG_KEY_PERMISSIONS').file, key);

  for (const mode of [0o440, 0o640, 0o400]) {
    const ok = await inspectTls(config({ bundle: file('server.pem', content, mode), client_ca }));
    assert.deepEqual(errors(ok.problems), [], mode.toString(8));
    assert.ok(ok.material);
  }
});

// ---- leaf validity and kind ---------------------------------------------------------------------

test('expired, not yet valid and expiring-soon leaf', async () => {
  const { bundle, client_ca } = good();
  const end = new Date(server().x509.validTo).getTime();
  const start = new Date(server().x509.validFrom).getTime();
  const expired = await inspectTls(config({ bundle, client_ca }), { now: new Date(end + DAY) });
  assert.deepEqual(errors(expired.problems), ['CG_CERT_EXPIRED']);
  assert.equal(expired.material, undefined);
  const early = await inspectTls(config({ bundle, client_ca }), { now: new Date(start - DAY) });
  assert.deepEqual(errors(early.problems), ['CG_CERT_NOT_YET_VALID']);
  const soon = await inspectTls(config({ bundle, client_ca }), { now: new Date(end - 2 * DAY - 1000) });
  assert.deepEqual(errors(soon.problems), []);
  assert.match(find(soon.problems, 'CG_CERT_EXPIRES_SOON').message, /expires in 2 days/);
  assert.ok(soon.material);
  const later = await inspectTls(config({ bundle, client_ca }), { now: new Date(end - 20 * DAY - 1000) });
  assert.match(find(later.problems, 'CG_CERT_VALIDITY').message, /expires in 20 days/);

  // A certificate issued already expired (not just a shifted clock).
  const old = await pki.issueClient({
    name: 'old-server', usage: 'server', subject: [['CN', 'localhost']], san: { dns: ['localhost'] },
    notBefore: new Date(Date.now() - 30 * DAY), notAfter: new Date(Date.now() - DAY),
  });
  const r = await inspectTls(config({ bundle: old.pemPath, client_ca }));
  assert.deepEqual(errors(r.problems), ['CG_CERT_EXPIRED']);
  assert.equal(find(r.problems, 'CG_CERT_EXPIRED').file, old.pemPath);
});

test('a CA certificate, or a client-only certificate, used as the server certificate is refused', async () => {
  const bundle = file('server.pem', inter().key + inter().cert);
  const r1 = await inspectTls(config({ bundle, client_ca: pki.clientCa.path }));
  assert.equal(r1.material, undefined);
  assert.ok(errors(r1.problems).includes('CG_CERT_IS_CA'));
  const r2 = await inspectTls(config({ bundle: pki.clients.good.pemPath, client_ca: pki.clientCa.path }));
  assert.deepEqual(errors(r2.problems), ['CG_CERT_EKU']);
});

// ---- client CAs -----------------------------------------------------------------------------------

test('client_ca: no certificate, not a CA, intermediate without root', async () => {
  const { bundle } = good();
  const empty = file('ca.pem', 'nothing here\n', 0o644);
  const r1 = await inspectTls(config({ bundle, client_ca: empty }));
  assert.deepEqual(errors(r1.problems), ['CG_CA_EMPTY']);
  assert.equal(find(r1.problems, 'CG_CA_EMPTY').file, empty);

  const keyOnly = file('ca.pem', pki.clients.good.key);
  assert.deepEqual(errors((await inspectTls(config({ bundle, client_ca: keyOnly }))).problems), ['CG_CA_EMPTY']);

  const notCa = file('ca.pem', pki.root.cert + pki.clients.good.cert, 0o644);
  const r2 = await inspectTls(config({ bundle, client_ca: notCa }));
  assert.deepEqual(errors(r2.problems), ['CG_CA_NOT_CA']);
  assert.match(find(r2.problems, 'CG_CA_NOT_CA').message, /CN=svc-a \(block 2\)/);

  const r3 = await inspectTls(config({ bundle, client_ca: inter().certPath }));
  assert.deepEqual(errors(r3.problems), ['CG_CA_NO_ROOT']);
  assert.ok(find(r3.problems, 'CG_CA_NO_ROOT').message.includes(ROOT_CN));
  assert.equal(find(r3.problems, 'CG_CA_NO_ROOT').file, inter().certPath);
});

// ---- CRLs ------------------------------------------------------------------------------------------

test('CRLs: expired, from an unknown issuer, a client CA without CRL', async () => {
  const { bundle, client_ca } = good();
  const r1 = await inspectTls(config({ bundle, client_ca, crl: pki.expiredCrlPath }));
  assert.deepEqual(errors(r1.problems), ['CG_CRL_EXPIRED']);
  assert.equal(find(r1.problems, 'CG_CRL_EXPIRED').file, pki.expiredCrlPath);
  assert.ok(find(r1.problems, 'CG_CRL_EXPIRED').message.includes(`CRL (block 1) of ${INTER_CN} expired`));

  const foreign = file('crl.pem', pki.crlPem + await crlOf(pki.otherRoot), 0o644);
  const r2 = await inspectTls(config({ bundle, client_ca, crl: foreign }));
  assert.deepEqual(errors(r2.problems), ['CG_CRL_ISSUER']);
  assert.match(find(r2.problems, 'CG_CRL_ISSUER').message, /\(block 3\) of CN=unrelated root CA/);

  const r3 = await inspectTls(config({ bundle, client_ca, crl: pki.crlRootPath }));
  assert.deepEqual(errors(r3.problems), ['CG_CRL_MISSING_CA']);
  assert.ok(find(r3.problems, 'CG_CRL_MISSING_CA').message.includes(INTER_CN));
  assert.equal(find(r3.problems, 'CG_CRL_MISSING_CA').file, pki.crlRootPath);
});

test('a stale CRL never stops loading (crl_mode leaf and chain): the material loads, the finding stays an error for check', async () => {
  const { bundle, client_ca } = good();
  for (const crl_mode of ['leaf', 'chain'] as const) {
    // chain mode needs a CRL of every CA: the expired file holds the intermediate's (stale) and the root's.
    const r = await inspectTls(config({ bundle, client_ca, crl: pki.expiredCrlPath, crl_mode, crl_stale: 'refuse' }));
    assert.deepEqual(errors(r.problems), ['CG_CRL_EXPIRED'], crl_mode);
    assert.ok(r.material !== undefined, `PRODUCT BUG (${crl_mode}): a stale CRL stopped the material from loading: ${JSON.stringify(r.problems)}`);
    assert.ok(r.material.problems.some((p) => p.code === 'CG_CRL_EXPIRED' && p.severity === 'error'), 'the loaded material carries the error, for serve to log');
    const m = await loadTls(config({ bundle, client_ca, crl: pki.expiredCrlPath, crl_mode }));
    assert.equal(m.leaf.serialNumber, server().x509.serialNumber);
  }
  // An error that does stop the load still does, beside it.
  const mismatched = file('mismatched.pem', pki.clients.good.key + server().cert);
  await assert.rejects(loadTls(config({ bundle: mismatched, client_ca, crl: pki.expiredCrlPath })), (err: CertgateError) => err.code === 'CG_KEY_MISMATCH');
});

test('a CRL labelled "BEGIN CRL" (the @peculiar/x509 default) is re-labelled so Node accepts it', async () => {
  const { bundle, client_ca } = good();
  const label = (p: string): string => p.replace(/X509 CRL/g, 'CRL');
  assert.throws(() => tls.createSecureContext({ crl: label(pki.crlRootPem) }), /Failed to parse CRL/);
  const crl = file('crl.pem', label(pki.crlPem), 0o644);
  const m = await loadTls(config({ bundle, client_ca, crl }));
  assert.equal(m.crl?.length, 2);
  assert.ok(m.crl?.every((c) => c.startsWith('-----BEGIN X509 CRL-----\n')));
  tls.createSecureContext({ crl: m.crl });
});

// ---- unreadable and malformed files ---------------------------------------------------------------

test('missing file: CG_FILE_READ naming the path', async () => {
  const missing = path.join(dir, 'does-not-exist.pem');
  const r = await inspectTls(config({ bundle: missing, client_ca: pki.clientCa.path }));
  assert.deepEqual(errors(r.problems), ['CG_FILE_READ']);
  const p = find(r.problems, 'CG_FILE_READ');
  assert.equal(p.file, missing);
  assert.ok(p.message.includes(missing));
  await assert.rejects(loadTls(config({ bundle: server().pemPath, client_ca: missing })), (err: unknown) =>
    err instanceof CertgateError && err.code === 'CG_FILE_READ' && err.file === missing);
});

test('garbage, DER, broken PEM and key-less files are named', async () => {
  const client_ca = pki.clientCa.path;
  const garbage = file('server.pem', 'this is not a certificate\n');
  const r1 = await inspectTls(config({ bundle: garbage, client_ca }));
  assert.deepEqual(errors(r1.problems), ['CG_PEM_EMPTY']);
  assert.equal(find(r1.problems, 'CG_PEM_EMPTY').file, garbage);

  const der = file('server.der', server().x509.raw);
  const key = file('server.key', server().key);
  const r2 = await inspectTls(config({ cert: der, key, client_ca }));
  assert.deepEqual(errors(r2.problems), ['CG_PEM_PARSE']);
  assert.match(find(r2.problems, 'CG_PEM_PARSE').message, /binary DER/);
  assert.equal(find(r2.problems, 'CG_PEM_PARSE').file, der);

  const lines = server().cert.split('\n');
  lines[3] = '!!!!';
  const broken = file('server.pem', server().key + lines.join('\n'));
  const r3 = await inspectTls(config({ bundle: broken, client_ca }));
  assert.ok(errors(r3.problems).includes('CG_PEM_PARSE'));
  assert.match(find(r3.problems, 'CG_PEM_PARSE').message, /CERTIFICATE \(block 2\) starting at line \d+ is malformed/);

  const noKey = file('server.pem', server().cert);
  const r4 = await inspectTls(config({ bundle: noKey, client_ca }));
  assert.deepEqual(errors(r4.problems), ['CG_KEY_MISSING']);
  assert.equal(find(r4.problems, 'CG_KEY_MISSING').file, noKey);
});

test('what passes our checks but OpenSSL refuses (a 512-bit RSA key) is CG_TLS_REJECTED on that file', async () => {
  const alg = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
  const keys = await webcrypto.subtle.generateKey({ ...alg, modulusLength: 512, publicExponent: new Uint8Array([1, 0, 1]) }, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01', name: 'CN=localhost', keys, signingAlgorithm: alg,
    notBefore: new Date(Date.now() - DAY), notAfter: new Date(Date.now() + DAY),
    extensions: [new x509.BasicConstraintsExtension(false, undefined, true), new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: 'localhost' }])],
  });
  const key = KeyObject.from(keys.privateKey).export({ type: 'pkcs8', format: 'pem' }) as string;
  const bundle = file('weak.pem', key + certToPem(cert));
  const r = await inspectTls(config({ bundle, client_ca: pki.clientCa.path }));
  assert.equal(r.material, undefined);
  assert.deepEqual(errors(r.problems), ['CG_TLS_REJECTED']);
  assert.equal(find(r.problems, 'CG_TLS_REJECTED').file, bundle);
  assert.match(find(r.problems, 'CG_TLS_REJECTED').message, /ee key too small/);
});
