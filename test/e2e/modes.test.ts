/**
 * client_auth: optional — a client without a certificate is forwarded as X-Client-Cert-Verified: NONE on
 * routes without `allow` (and no other identity header, even a forged one); a route with `allow` needs a
 * certificate (400 client_certificate_required); an invalid certificate is still refused.
 * min_version: TLSv1.3 refuses a TLS 1.2 client at the handshake; TLS 1.1 is never offered.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import { createTestPki, type TestPki, type TestCert } from '../helpers/pki.js';
import { startTestCertgate, startRecordingUpstream, metricValue, type RunningCertgate, type RecordingUpstream } from '../helpers/certgate.js';
import { mtlsRequest } from '../helpers/client.js';

let pki: TestPki;
let upstream: RecordingUpstream;
let optional: RunningCertgate;
let tls13: RunningCertgate;

before(async () => {
  pki = await createTestPki();
  upstream = await startRecordingUpstream();
  const tls = { bundle: pki.serverBundle.pemPath, client_ca: pki.clientCa.path };
  [optional, tls13] = await Promise.all([
    startTestCertgate({
      tls: { ...tls, client_auth: 'optional' },
      routes: [
        { name: 'private', path_prefix: '/private', upstream: upstream.url, allow: { subject_cn: ['svc-a'] } },
        { name: 'open', path_prefix: '/', upstream: upstream.url },
      ],
    }),
    startTestCertgate({ tls: { ...tls, min_version: 'TLSv1.3' }, routes: [{ name: 'all', upstream: upstream.url }] }),
  ]);
});
after(async () => {
  await Promise.all([optional?.close(), tls13?.close(), upstream?.close()]);
  pki?.cleanup();
});

const as = (c?: TestCert) => ({ ca: pki.root.cert, ...(c && { cert: c.pem, key: c.key }) });

test('optional: no certificate → forwarded with Verified: NONE and no other identity header, forged ones removed', async () => {
  const r = await mtlsRequest(optional.url, as(), { path: '/hello', headers: { 'x-client-cert-verified': 'SUCCESS', 'x-client-cert-subject': 'CN=admin' } });
  assert.equal(r.status, 200, r.body);
  const seen = upstream.requests.at(-1)!;
  const identity = seen.rawHeaders.filter(([k]) => k.toLowerCase().replaceAll('_', '-').startsWith('x-client-cert'));
  assert.deepEqual(identity, [['x-client-cert-verified', 'NONE']]);
});

test('optional: a verified certificate is forwarded as SUCCESS with its subject', async () => {
  const r = await mtlsRequest(optional.url, as(pki.clients.good), { path: '/hello' });
  assert.equal(r.status, 200);
  assert.equal(upstream.requests.at(-1)!.headers['x-client-cert-verified'], 'SUCCESS');
  assert.equal(upstream.requests.at(-1)!.headers['x-client-cert-subject'], 'CN=svc-a,OU=payments');
});

test('optional: a route with allow needs a certificate → 400 client_certificate_required naming the route', async () => {
  const before = upstream.requests.length;
  const r = await mtlsRequest(optional.url, as(), { path: '/private/x' });
  assert.equal(r.status, 400);
  assert.equal(r.json().error, 'client_certificate_required');
  assert.equal(r.json().route, 'private');
  assert.equal(upstream.requests.length, before);
  const ok = await mtlsRequest(optional.url, as(pki.clients.good), { path: '/private/x' });
  assert.equal(ok.status, 200);
});

test('optional: an invalid certificate is refused, not downgraded to NONE', async () => {
  const before = upstream.requests.length;
  const r = await mtlsRequest(optional.url, as(pki.clients.otherCa), { path: '/hello' });
  assert.equal(r.status, 400);
  assert.deepEqual([r.json().error, r.json().reason], ['client_certificate_invalid', 'unknown_ca']);
  assert.equal(upstream.requests.length, before);
});

function handshake(url: string, c: TestCert, maxVersion: 'TLSv1.2' | 'TLSv1.1', minVersion?: 'TLSv1.1'): Promise<number | Error> {
  return new Promise((resolve) => {
    const req = https.request(url, {
      ca: pki.root.cert, cert: c.pem, key: c.key, servername: 'localhost', agent: false, maxVersion,
      ...(minVersion && { minVersion }),
    }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', (err) => resolve(err));
    req.end();
  });
}

test('min_version TLSv1.3 refuses a TLS 1.2 client at the handshake (counted as protocol)', async () => {
  const before = metricValue(await tls13.metricsText(), 'certgate_tls_handshake_failures_total', { reason: 'protocol' }) ?? 0;
  const outcome = await handshake(tls13.url, pki.clients.good, 'TLSv1.2');
  assert.ok(outcome instanceof Error, `expected a handshake failure, got ${String(outcome)}`);
  assert.equal(metricValue(await tls13.metricsText(), 'certgate_tls_handshake_failures_total', { reason: 'protocol' }), before + 1);
  assert.equal((await mtlsRequest(tls13.url, as(pki.clients.good))).status, 200, 'TLS 1.3 clients pass');
});

test('TLS 1.1 is never accepted, whatever the config says', async () => {
  const outcome = await handshake(optional.url, pki.clients.good, 'TLSv1.1', 'TLSv1.1');
  assert.ok(outcome instanceof Error, `expected a handshake failure, got ${String(outcome)}`);
});

test('tls.cert + an encrypted tls.key + passphrase_file (trailing newline not part of it) serve like a bundle', async () => {
  const { createPrivateKey } = await import('node:crypto');
  const { writeFileSync } = await import('node:fs');
  const path = await import('node:path');
  const encrypted = createPrivateKey(pki.serverBundle.key).export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 's3cret' });
  const keyPath = path.join(pki.dir, 'server-encrypted.key');
  const passPath = path.join(pki.dir, 'server.pass');
  const certPath = path.join(pki.dir, 'server-chain.crt');
  writeFileSync(keyPath, encrypted, { mode: 0o600 });
  writeFileSync(passPath, 's3cret\n', { mode: 0o600 });
  writeFileSync(certPath, pki.serverBundle.cert + pki.intermediate.cert);
  const gate = await startTestCertgate({
    tls: { cert: certPath, key: keyPath, passphrase_file: passPath, client_ca: pki.clientCa.path },
    routes: [{ name: 'all', upstream: upstream.url }],
  });
  try {
    const r = await mtlsRequest(gate.url, as(pki.clients.good));
    assert.equal(r.status, 200, r.body);
  } finally {
    await gate.close();
  }
});
