/**
 * The dev PKI (`certgate certs init|issue|sign|revoke`) and the suite's createTestPki(), judged by
 * independent readers: the openssl CLI (verify, crl, pkcs12, req) and Node's own TLS stack. Each
 * negative case is paired with a positive one, so a check that always fails (or passes) shows up.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { runCerts } from '../../dist/commands/certs.js';
import { createTestPki, type TestPki } from '../helpers/pki.js';

function openssl(...args: string[]): { ok: boolean; out: string } {
  const r = spawnSync('openssl', args, { encoding: 'utf8' });
  return { ok: r.status === 0, out: `${r.stdout}${r.stderr}` };
}

async function certs(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runCerts(argv, { stdout: (s) => void (out += `${s}\n`), stderr: (s) => void (err += `${s}\n`) });
  return { code, out, err };
}

const tmp = (): string => fs.mkdtempSync(path.join(os.tmpdir(), 'certgate-certs-test-'));
const mode = (file: string): string => (fs.statSync(file).mode & 0o777).toString(8);
const blocks = (pem: string, label: string): string[] => pem.match(new RegExp(`-----BEGIN ${label}-----[\\s\\S]*?-----END ${label}-----\\n`, 'g')) ?? [];

/** One handshake; returns what the *server* concluded about the client certificate. */
async function serverVerdict(server: tls.TlsOptions, client: tls.ConnectionOptions): Promise<string> {
  const srv = tls.createServer({ ...server, requestCert: true, rejectUnauthorized: false });
  const verdict = new Promise<string>((resolve) => srv.once('secureConnection', (s) => {
    resolve(s.authorized ? 'authorized' : String(s.authorizationError));
    s.destroy();
  }));
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const sock = tls.connect({ port: (srv.address() as AddressInfo).port, host: '127.0.0.1', servername: 'localhost', ...client });
  sock.on('error', () => {}); // the server may cut the connection; only its verdict matters here
  try {
    return await verdict;
  } finally {
    sock.destroy();
    srv.close();
  }
}

describe('certs init', () => {
  let dir: string;
  const f = (name: string): string => path.join(dir, name);
  before(async () => {
    dir = tmp();
    const r = await certs('init', '--dir', dir);
    assert.equal(r.code, 0, r.err);
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('writes every file, secrets 0600 and the rest 0644, no temp files left', () => {
    const expected: Record<string, string> = {
      'ca.crt': '644', 'ca.key': '600', 'server.pem': '600', 'client.crt': '644', 'client.key': '600',
      'client.pem': '600', 'client.p12': '600', 'client.p12.pass': '600', 'crl.pem': '644',
    };
    assert.deepEqual(fs.readdirSync(dir).sort(), Object.keys(expected).sort());
    for (const [name, m] of Object.entries(expected)) assert.equal(mode(f(name)), m, name);
  });

  test('server.pem is key + leaf + CA; the leaf verifies as a TLS server for localhost, 127.0.0.1 and ::1', () => {
    const pem = fs.readFileSync(f('server.pem'), 'utf8');
    assert.equal(blocks(pem, 'PRIVATE KEY').length, 1);
    const certsIn = blocks(pem, 'CERTIFICATE');
    assert.equal(certsIn.length, 2);
    const leaf = new X509Certificate(certsIn[0]!);
    assert.ok(leaf.checkPrivateKey(createPrivateKey(pem)), 'the key belongs to the first certificate');
    assert.equal(certsIn[1], fs.readFileSync(f('ca.crt'), 'utf8'));
    const v = openssl('verify', '-CAfile', f('ca.crt'), '-purpose', 'sslserver', f('server.pem'));
    assert.ok(v.ok, v.out);
    assert.equal(leaf.subjectAltName, 'DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1');
    assert.equal(leaf.subject, 'O=certgate dev\nCN=localhost');
    const days = (Date.parse(leaf.validTo) - Date.parse(leaf.validFrom)) / 86_400_000;
    assert.ok(days <= 825, `leaf valid ${days} days`);
    const ca = new X509Certificate(fs.readFileSync(f('ca.crt')));
    assert.equal(ca.subject, 'O=certgate dev\nCN=certgate dev CA');
    assert.ok(ca.ca);
    assert.equal(Math.round((Date.parse(ca.validTo) - Date.parse(ca.validFrom)) / 86_400_000), 3650);
  });

  test('the client certificate verifies as a TLS client, not as a server', () => {
    const ok = openssl('verify', '-CAfile', f('ca.crt'), '-purpose', 'sslclient', f('client.crt'));
    assert.ok(ok.ok, ok.out);
    const bad = openssl('verify', '-CAfile', f('ca.crt'), '-purpose', 'sslserver', f('client.crt'));
    assert.ok(!bad.ok && /(unsuitable|unsupported) certificate purpose/.test(bad.out), bad.out);
    const pem = fs.readFileSync(f('client.pem'), 'utf8');
    assert.equal(blocks(pem, 'PRIVATE KEY').length + blocks(pem, 'CERTIFICATE').length, 2);
  });

  test('crl.pem parses in openssl, is signed by the CA, lists nothing and is valid ~30 days', () => {
    const r = openssl('crl', '-in', f('crl.pem'), '-noout', '-text', '-CAfile', f('ca.crt'));
    assert.ok(r.ok, r.out);
    assert.match(r.out, /verify OK/);
    assert.match(r.out, /No Revoked Certificates/);
    const last = Date.parse(/Last Update: (.+)/.exec(r.out)![1]!);
    const next = Date.parse(/Next Update: (.+)/.exec(r.out)![1]!);
    assert.ok(Math.abs((next - last) / 86_400_000 - 30) < 0.1, `${last} → ${next}`);
  });

  test('client.p12 opens with the pass file password in Node and openssl, and not with another', () => {
    const pfx = fs.readFileSync(f('client.p12'));
    const passphrase = fs.readFileSync(f('client.p12.pass'), 'utf8').trim();
    assert.ok(passphrase.length >= 20);
    assert.doesNotThrow(() => tls.createSecureContext({ pfx, passphrase }));
    assert.throws(() => tls.createSecureContext({ pfx, passphrase: `${passphrase}x` }), /mac verify failure/);
    const info = openssl('pkcs12', '-in', f('client.p12'), '-info', '-noout', '-passin', `file:${f('client.p12.pass')}`);
    assert.ok(info.ok, info.out);
    assert.match(info.out, /Shrouded Keybag: PBES2, PBKDF2, AES-256-CBC/);
    assert.match(info.out, /MAC: sha256/);
    assert.ok(!openssl('pkcs12', '-in', f('client.p12'), '-info', '-noout', '-passin', 'pass:wrong').ok);
  });

  test('Node accepts the dev client over TLS with the dev CA and its CRL loaded', async () => {
    const verdict = await serverVerdict(
      { key: fs.readFileSync(f('server.pem')), cert: fs.readFileSync(f('server.pem')), ca: fs.readFileSync(f('ca.crt')), crl: fs.readFileSync(f('crl.pem')) },
      { key: fs.readFileSync(f('client.key')), cert: fs.readFileSync(f('client.crt')), ca: fs.readFileSync(f('ca.crt')) },
    );
    assert.equal(verdict, 'authorized');
  });

  test('refuses to overwrite without --force and names the files; --force replaces the CA', async () => {
    const before = fs.readFileSync(f('ca.crt'), 'utf8');
    const refused = await certs('init', '--dir', dir);
    assert.equal(refused.code, 1);
    assert.match(refused.err, /\[CG_PKI_EXISTS\]/);
    assert.ok(refused.err.includes(f('ca.key')) && refused.err.includes(f('client.p12')), refused.err);
    assert.equal(refused.err.trim().split('\n').length, 1, 'one line');
    assert.equal(fs.readFileSync(f('ca.crt'), 'utf8'), before);
    const forced = await certs('init', '--dir', dir, '--force');
    assert.equal(forced.code, 0, forced.err);
    assert.notEqual(fs.readFileSync(f('ca.crt'), 'utf8'), before);
    assert.ok(openssl('verify', '-CAfile', f('ca.crt'), f('server.pem')).ok);
  });

  test('--rsa gives RSA-2048 keys that verify and a p12 Node loads', async () => {
    const rsaDir = tmp();
    try {
      assert.equal((await certs('init', '--dir', rsaDir, '--rsa')).code, 0);
      for (const name of ['ca.key', 'client.key', 'server.pem']) {
        const key = createPrivateKey(fs.readFileSync(path.join(rsaDir, name)));
        assert.equal(key.asymmetricKeyType, 'rsa', name);
        assert.equal(key.asymmetricKeyDetails?.modulusLength, 2048, name);
      }
      assert.equal(createPrivateKey(fs.readFileSync(f('ca.key'))).asymmetricKeyType, 'ec', 'the default stays ECDSA');
      assert.ok(openssl('verify', '-CAfile', path.join(rsaDir, 'ca.crt'), path.join(rsaDir, 'server.pem')).ok);
      const passphrase = fs.readFileSync(path.join(rsaDir, 'client.p12.pass'), 'utf8').trim();
      assert.doesNotThrow(() => tls.createSecureContext({ pfx: fs.readFileSync(path.join(rsaDir, 'client.p12')), passphrase }));
    } finally {
      fs.rmSync(rsaDir, { recursive: true, force: true });
    }
  });
});

describe('certs issue, sign, revoke', () => {
  let dir: string;
  const f = (name: string): string => path.join(dir, name);
  const verifyClient = (file: string, crl?: boolean) =>
    openssl('verify', '-CAfile', f('ca.crt'), '-purpose', 'sslclient', ...(crl ? ['-crl_check', '-CRLfile', f('crl.pem')] : []), file);
  before(async () => {
    dir = tmp();
    assert.equal((await certs('init', '--dir', dir)).code, 0);
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('issue writes PREFIX.crt/.key/.pem with the requested names and prints the paths', async () => {
    const r = await certs('issue', '--dir', dir, '--cn', 'svc-a', '--ou', 'payments', '--san-uri', 'spiffe://example.org/a',
      '--san-uri', 'spiffe://example.org/b', '--san-dns', 'svc-a.internal', '--days', '10');
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(r.out.trim().split('\n'), [f('svc-a.crt'), f('svc-a.key'), f('svc-a.pem')]);
    assert.equal(mode(f('svc-a.key')), '600');
    assert.equal(mode(f('svc-a.crt')), '644');
    const v = verifyClient(f('svc-a.crt'));
    assert.ok(v.ok, v.out);
    const subject = openssl('x509', '-in', f('svc-a.crt'), '-noout', '-subject', '-nameopt', 'RFC2253');
    assert.equal(subject.out.trim(), 'subject=CN=svc-a,OU=payments,O=certgate dev');
    const cert = new X509Certificate(fs.readFileSync(f('svc-a.crt')));
    assert.equal(cert.subjectAltName, 'DNS:svc-a.internal, URI:spiffe://example.org/a, URI:spiffe://example.org/b');
    assert.equal(Math.round((Date.parse(cert.validTo) - Date.parse(cert.validFrom)) / 86_400_000), 10);
    assert.ok(cert.checkPrivateKey(createPrivateKey(fs.readFileSync(f('svc-a.pem')))));
  });

  test('issue --out PREFIX writes there; a CN that is no file name needs --out; --days above 825 is a usage error', async () => {
    const prefix = path.join(dir, 'sub', 'x');
    const r = await certs('issue', '--dir', dir, '--cn', 'a/b', '--out', prefix);
    assert.equal(r.code, 0, r.err);
    assert.ok(fs.existsSync(`${prefix}.pem`));
    const noOut = await certs('issue', '--dir', dir, '--cn', '../evil');
    assert.equal(noOut.code, 2);
    assert.match(noOut.err, /--out/);
    const long = await certs('issue', '--dir', dir, '--cn', 'svc-long', '--days', '826');
    assert.equal(long.code, 2);
    assert.match(long.err, /825/);
    assert.ok(!fs.existsSync(f('svc-long.crt')));
  });

  test('sign turns an openssl CSR into a client certificate + chain that verifies', async () => {
    const r0 = openssl('req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f('csr.key'),
      '-out', f('svc-b.csr'), '-subj', '/O=ext/CN=svc-b', '-addext', 'subjectAltName=URI:spiffe://example.org/b');
    assert.ok(r0.ok, r0.out);
    const r = await certs('sign', '--dir', dir, '--csr', f('svc-b.csr'), '--days', '30');
    assert.equal(r.code, 0, r.err);
    const chain = blocks(r.out, 'CERTIFICATE');
    assert.equal(chain.length, 2);
    assert.equal(chain[1], fs.readFileSync(f('ca.crt'), 'utf8'));
    fs.writeFileSync(f('svc-b.crt'), chain[0]!);
    const v = verifyClient(f('svc-b.crt'));
    assert.ok(v.ok, v.out);
    const leaf = new X509Certificate(chain[0]!);
    assert.equal(leaf.subject, 'O=ext\nCN=svc-b');
    assert.equal(leaf.subjectAltName, 'URI:spiffe://example.org/b');
    assert.ok(leaf.checkPrivateKey(createPrivateKey(fs.readFileSync(f('csr.key')))));
    const toFile = await certs('sign', '--dir', dir, '--csr', f('svc-b.csr'), '--out', f('svc-b-chain.pem'));
    assert.equal(toFile.code, 0, toFile.err);
    assert.equal(blocks(fs.readFileSync(f('svc-b-chain.pem'), 'utf8'), 'CERTIFICATE').length, 2);
  });

  test('sign refuses a CSR whose signature is wrong, or that is not a CSR, with CG_CSR_INVALID', async () => {
    assert.ok(openssl('req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f('t.key'),
      '-out', f('t.csr'), '-subj', '/CN=tampered').ok);
    const pem = fs.readFileSync(f('t.csr'), 'utf8');
    const der = Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
    der[der.length - 1]! ^= 0x01; // inside the signature's s value: still parses, no longer verifies
    fs.writeFileSync(f('t.csr'), `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`);
    const tampered = await certs('sign', '--dir', dir, '--csr', f('t.csr'));
    assert.equal(tampered.code, 1);
    assert.match(tampered.err, /does not verify.*\[CG_CSR_INVALID\]/);
    fs.writeFileSync(f('junk.csr'), 'hello\n');
    const junk = await certs('sign', '--dir', dir, '--csr', f('junk.csr'));
    assert.equal(junk.code, 1);
    assert.match(junk.err, /\[CG_CSR_INVALID\]/);
    assert.equal(junk.out, '');
  });

  test('revoke lists the serial in crl.pem, keeps earlier entries, and openssl -crl_check then refuses the cert', async () => {
    for (const cn of ['svc-r1', 'svc-r2']) assert.equal((await certs('issue', '--dir', dir, '--cn', cn)).code, 0);
    const serialOf = (cn: string): string => new X509Certificate(fs.readFileSync(f(`${cn}.crt`))).serialNumber;
    assert.ok(verifyClient(f('svc-r1.crt'), true).ok, 'not revoked yet');
    const r1 = await certs('revoke', '--dir', dir, '--cert', f('svc-r1.crt'));
    assert.equal(r1.code, 0, r1.err);
    assert.ok(r1.out.includes(serialOf('svc-r1')), r1.out);
    const refused = verifyClient(f('svc-r1.crt'), true);
    assert.ok(!refused.ok && /certificate revoked/.test(refused.out), refused.out);
    assert.ok(verifyClient(f('svc-r2.crt'), true).ok, 'others unaffected');
    assert.equal((await certs('revoke', '--dir', dir, '--cert', f('svc-r2.crt'))).code, 0);
    const text = openssl('crl', '-in', f('crl.pem'), '-noout', '-text', '-CAfile', f('ca.crt'));
    assert.ok(text.ok && /verify OK/.test(text.out), text.out);
    assert.ok(text.out.includes(`Serial Number: ${serialOf('svc-r1')}`), text.out);
    assert.ok(text.out.includes(`Serial Number: ${serialOf('svc-r2')}`), text.out);
    assert.match(text.out, /CRL Number: \n\s+3/);
    assert.equal(mode(f('crl.pem')), '644');
  });

  test('revoke refuses a certificate from another CA, and every command needs the CA files', async () => {
    const other = tmp();
    try {
      assert.equal((await certs('init', '--dir', other)).code, 0);
      const foreign = await certs('revoke', '--dir', dir, '--cert', path.join(other, 'client.crt'));
      assert.equal(foreign.code, 1);
      assert.match(foreign.err, /\[CG_PKI_FOREIGN_CERT\]/);
      fs.rmSync(path.join(other, 'ca.key'));
      for (const argv of [['revoke', '--cert', f('client.crt')], ['issue', '--cn', 'x'], ['sign', '--csr', f('svc-b.csr')]]) {
        const r = await certs(argv[0]!, '--dir', other, ...argv.slice(1));
        assert.equal(r.code, 1, argv.join(' '));
        assert.match(r.err, /ca\.key.*\[CG_PKI_CA_MISSING\]/);
      }
    } finally {
      fs.rmSync(other, { recursive: true, force: true });
    }
  });
});

describe('certs command line', () => {
  test('unknown flags, stray arguments, missing flags and unknown subcommands are one-line usage errors (exit 2)', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['init', '--dir', 'x', '--bogus'], /Unknown option '--bogus'/],
      [['init', '--dir', 'x', 'extra'], /Unexpected argument 'extra'/],
      [['init'], /--dir is required/],
      [['issue', '--dir', 'x'], /--cn is required/],
      [['issue', '--dir', 'x', '--cn', 'a', '--days', 'ten'], /--days/],
      [['frob'], /unknown subcommand "frob"/],
      [[], /Usage: certgate certs/],
    ];
    for (const [argv, reason] of cases) {
      const r = await certs(...argv);
      assert.equal(r.code, 2, argv.join(' '));
      assert.match(r.err, reason);
      if (argv.length > 0) assert.equal(r.err.trim().split('\n').length, 1, r.err);
    }
  });

  test('every subcommand has --help with a usage line, its flags and an example', async () => {
    for (const [sub, flag] of [['init', '--rsa'], ['issue', '--san-uri'], ['sign', '--csr'], ['revoke', '--cert']] as const) {
      const r = await certs(sub, '--help');
      assert.equal(r.code, 0);
      assert.match(r.out, new RegExp(`^Usage: certgate certs ${sub} `));
      assert.ok(r.out.includes(flag) && /Example: certgate certs/.test(r.out), r.out);
    }
  });
});

describe('createTestPki', () => {
  let pki: TestPki;
  let tookMs = 0;
  before(async () => {
    const t0 = performance.now();
    pki = await createTestPki();
    tookMs = performance.now() - t0;
  });
  after(() => pki.cleanup());

  const verify = (certPath: string, ...extra: string[]) =>
    openssl('verify', '-CAfile', pki.root.certPath, '-untrusted', pki.intermediate.certPath, '-purpose', 'sslclient', ...extra, certPath);

  test('clients verify, or fail, in openssl as their names say', (t) => {
    t.diagnostic(`createTestPki took ${Math.round(tookMs)} ms`); // reported, not asserted: no timing assertions
    const c = pki.clients;
    for (const good of [c.good, c.direct, c.revoked, c.hostileDn]) assert.ok(verify(good.certPath).ok, good.certPath);
    const expect: Array<[string, RegExp]> = [
      [c.expired.certPath, /certificate has expired/], [c.notYetValid.certPath, /certificate is not yet valid/],
      [c.otherCa.certPath, /unable to get local issuer certificate/], [c.serverAuthOnly.certPath, /(unsuitable|unsupported) certificate purpose/],
    ];
    for (const [file, reason] of expect) {
      const r = verify(file);
      assert.ok(!r.ok && reason.test(r.out), `${file}: ${r.out}`);
    }
    const server = openssl('verify', '-CAfile', pki.root.certPath, '-untrusted', pki.intermediate.certPath, '-purpose', 'sslserver', pki.serverBundle.certPath);
    assert.ok(server.ok, server.out);
  });

  test('crlPath revokes only `revoked`; expiredCrlPath fails everyone as expired', () => {
    assert.ok(verify(pki.clients.good.certPath, '-crl_check_all', '-CRLfile', pki.crlPath).ok);
    const revoked = verify(pki.clients.revoked.certPath, '-crl_check_all', '-CRLfile', pki.crlPath);
    assert.ok(!revoked.ok && /certificate revoked/.test(revoked.out), revoked.out);
    const stale = verify(pki.clients.good.certPath, '-crl_check_all', '-CRLfile', pki.expiredCrlPath);
    assert.ok(!stale.ok && /CRL has expired/.test(stale.out), stale.out);
    assert.equal(pki.crlPem, pki.crlIntermediatePem + pki.crlRootPem);
  });

  test('names, SANs, bundles and file modes are as documented', () => {
    const subject = (file: string) => openssl('x509', '-in', file, '-noout', '-subject', '-nameopt', 'RFC2253').out.trim();
    assert.equal(subject(pki.clients.good.certPath), 'subject=CN=svc-a,OU=payments');
    assert.equal(subject(pki.clients.hostileDn.certPath), 'subject=CN=a\\,O=admin\\+x \\"q\\" \\<b\\>\\;,OU=J\\C3\\BCrgen \\E6\\97\\A5\\E6\\9C\\AC');
    assert.equal(pki.clients.good.x509.subjectAltName, 'DNS:svc-a.internal, URI:spiffe://example.org/ns/prod/sa/svc-a');
    assert.equal(pki.serverBundle.x509.subjectAltName, 'DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1');
    assert.equal(pki.serverBundle.pem, pki.serverBundle.key + pki.serverBundle.cert + pki.intermediate.cert);
    assert.equal(pki.clients.good.pem, pki.clients.good.key + pki.clients.good.cert + pki.intermediate.cert);
    assert.equal(pki.clients.direct.pem, pki.clients.direct.key + pki.clients.direct.cert);
    assert.equal(fs.readFileSync(pki.clientCa.path, 'utf8'), pki.root.cert + pki.intermediate.cert);
    assert.equal(fs.readFileSync(pki.rootOnlyCa.path, 'utf8'), pki.root.cert);
    for (const file of [pki.root.keyPath, pki.clients.good.keyPath, pki.clients.good.pemPath, pki.serverBundle.pemPath]) assert.equal(mode(file), '600', file);
  });

  test("Node's TLS server reaches the verdicts the doc comment promises", async () => {
    const server = { key: pki.serverBundle.pem, cert: pki.serverBundle.pem, ca: pki.clientCa.pem, crl: [pki.crlIntermediatePem, pki.crlRootPem] };
    const c = pki.clients;
    const expected: Array<[string, string]> = [
      ['good', 'authorized'], ['direct', 'authorized'], ['hostileDn', 'authorized'], ['expired', 'CERT_HAS_EXPIRED'],
      ['notYetValid', 'CERT_NOT_YET_VALID'], ['otherCa', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE'], ['revoked', 'CERT_REVOKED'],
      ['serverAuthOnly', 'INVALID_PURPOSE'],
    ];
    for (const [name, want] of expected) {
      const client = c[name as keyof typeof c];
      assert.equal(await serverVerdict(server, { key: client.key, cert: client.pem, ca: pki.root.cert }), want, name);
    }
    const extra = await pki.issueClient({ name: 'extra', subject: [['CN', 'svc-extra']], notAfter: new Date(Date.now() - 1000), notBefore: new Date(Date.now() - 86_400_000) });
    assert.equal(await serverVerdict(server, { key: extra.key, cert: extra.pem, ca: pki.root.cert }), 'CERT_HAS_EXPIRED');
    assert.ok(fs.existsSync(path.join(pki.dir, 'extra.pem')));
  });
});
