/**
 * Client certificate refusals over real TLS: a client without a valid certificate never reaches the
 * upstream, and is told why in a 400 JSON answer (nginx-style), whatever TLS version it speaks.
 * Each refusal is counted in certgate_tls_handshake_failures_total{reason} and logged once with the
 * reason, the remote address and the certificate's subject.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createTestPki, type TestPki, type TestCert } from '../helpers/pki.js';
import { startTestCertgate, startRecordingUpstream, metricValue, type RunningCertgate, type RecordingUpstream } from '../helpers/certgate.js';
import { mtlsRequest } from '../helpers/client.js';
import { waitFor } from '../helpers/wait.js';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { createCrl, crlToPem, importSigningKey, parseCert } from '../../dist/pki/x509.js';

let pki: TestPki;
let upstream: RecordingUpstream;
let gate: RunningCertgate;
let gateWithCrl: RunningCertgate;
let gateWithExpiredCrl: RunningCertgate;
let soonStalePath: string;

before(async () => {
  pki = await createTestPki();
  upstream = await startRecordingUpstream();
  const tls = { bundle: pki.serverBundle.pemPath, client_ca: pki.clientCa.path };
  const routes = [{ name: 'all', upstream: upstream.url }];
  // The crl_expired refusal is what happens when a CRL goes stale while serving: the test below
  // installs one that expires 3 s later (via reload), starting from a current CRL in this file.
  soonStalePath = path.join(pki.dir, 'crl-soon-stale.pem');
  writeFileSync(soonStalePath, pki.crlPem);
  [gate, gateWithCrl, gateWithExpiredCrl] = await Promise.all([
    startTestCertgate({ tls, routes }),
    startTestCertgate({ tls: { ...tls, crl: pki.crlPath }, routes }),
    startTestCertgate({ tls: { ...tls, crl: soonStalePath }, routes }),
  ]);
});
after(async () => {
  await Promise.all([gate?.close(), gateWithCrl?.close(), gateWithExpiredCrl?.close(), upstream?.close()]);
  pki?.cleanup();
});

const as = (c: TestCert | undefined) => ({ ca: pki.root.cert, ...(c && { cert: c.pem, key: c.key }) });

async function assertRefused(g: RunningCertgate, client: TestCert | undefined, error: string, reason: string | undefined) {
  const before = upstream.requests.length;
  const reply = await mtlsRequest(g.url, as(client), { path: '/anything' });
  assert.equal(reply.status, 400, reply.body);
  assert.equal(reply.headers.connection, 'close');
  assert.equal(reply.headers['content-type'], 'application/json');
  const body = reply.json();
  assert.equal(body.error, error);
  if (reason !== undefined) assert.equal(body.reason, reason);
  assert.equal(upstream.requests.length, before, 'the upstream must not see a refused request');
  return body;
}

const CASES: [string, () => TestCert | undefined, string, string | undefined, string][] = [
  ['no certificate', () => undefined, 'client_certificate_required', undefined, 'no_certificate'],
  ['expired', () => pki.clients.expired, 'client_certificate_invalid', 'expired', 'expired'],
  ['not yet valid', () => pki.clients.notYetValid, 'client_certificate_invalid', 'not_yet_valid', 'not_yet_valid'],
  ['unknown CA', () => pki.clients.otherCa, 'client_certificate_invalid', 'unknown_ca', 'unknown_ca'],
  ['serverAuth-only EKU', () => pki.clients.serverAuthOnly, 'client_certificate_invalid', 'bad_certificate', 'bad_certificate'],
];

for (const [name, client, error, reason, metric] of CASES) {
  test(`refused: ${name} → 400 ${error}${reason ? `/${reason}` : ''}, counted and logged once`, async () => {
    const before = metricValue(await gate.metricsText(), 'certgate_tls_handshake_failures_total', { reason: metric }) ?? 0;
    const logsBefore = gate.logs.find('client certificate refused').length;
    await assertRefused(gate, client(), error, reason);
    const after = metricValue(await gate.metricsText(), 'certgate_tls_handshake_failures_total', { reason: metric });
    assert.equal(after, before + 1);
    const logged = gate.logs.find('client certificate refused').slice(logsBefore);
    assert.equal(logged.length, 1);
    assert.equal(logged[0]!.reason, metric);
    assert.equal(logged[0]!.remote_address, '127.0.0.1');
    if (client() !== undefined) assert.match(String(logged[0]!.client_subject), /^CN=svc-/);
  });
}

test('refused over TLS 1.2 as well: the client reads the reason, not a reset', async () => {
  const { request } = await import('node:https');
  const reply = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = request(`${gate.url}/`, {
      ca: pki.root.cert, cert: pki.clients.expired.pem, key: pki.clients.expired.key, servername: 'localhost',
      maxVersion: 'TLSv1.2', agent: false,
    }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
  assert.equal(reply.status, 400);
  assert.deepEqual(JSON.parse(reply.body).reason, 'expired');
});

test('revoked (CRL loaded): 400 revoked; a good client of the same CA still passes', async () => {
  await assertRefused(gateWithCrl, pki.clients.revoked, 'client_certificate_invalid', 'revoked');
  const ok = await mtlsRequest(gateWithCrl.url, as(pki.clients.good));
  assert.equal(ok.status, 200, ok.body);
  const direct = await mtlsRequest(gateWithCrl.url, as(pki.clients.direct));
  assert.equal(direct.status, 200, 'a root-issued client passes when the root CRL is present too');
  assert.equal(metricValue(await gateWithCrl.metricsText(), 'certgate_tls_handshake_failures_total', { reason: 'revoked' }), 1);
});

test('a CRL that goes stale while serving refuses every client of that CA with crl_expired', async () => {
  const crlExpiresAt = new Date(Date.now() + 3000);
  const soonStale = await createCrl({
    issuer: { cert: parseCert(pki.intermediate.cert), privateKey: await importSigningKey(pki.intermediate.key) },
    nextUpdate: crlExpiresAt,
  });
  writeFileSync(soonStalePath, crlToPem(soonStale) + pki.crlRootPem);
  assert.equal((await gateWithExpiredCrl.app.reload('test')).result, 'success');
  const fresh = await mtlsRequest(gateWithExpiredCrl.url, as(pki.clients.good));
  if (Date.now() < crlExpiresAt.getTime()) assert.equal(fresh.status, 200, 'while the CRL is current the client passes');
  await waitFor(() => Date.now() > crlExpiresAt.getTime() + 1000, 'the CRL to pass its nextUpdate', 6000);
  await assertRefused(gateWithExpiredCrl, pki.clients.good, 'client_certificate_invalid', 'crl_expired');
});

test('a refused connection serves nothing more: the server closes it after the 400', async () => {
  const { rawTlsExchange } = await import('../helpers/client.js');
  const before = upstream.requests.length;
  const raw = await rawTlsExchange('127.0.0.1', gate.port, as(pki.clients.expired),
    'GET /a HTTP/1.1\r\nHost: localhost\r\n\r\nGET /b HTTP/1.1\r\nHost: localhost\r\n\r\n');
  assert.equal(raw.match(/HTTP\/1\.1 400/g)?.length, 1, raw);
  assert.equal(upstream.requests.length, before);
});

test('crl_mode leaf (default): an issuer without a CRL means not revoked; chain mode demands one per CA', async () => {
  const tls = { bundle: pki.serverBundle.pemPath, client_ca: pki.clientCa.path, crl: pki.crlIntermediatePath };
  const routes = [{ name: 'all', upstream: upstream.url }];
  const leaf = await startTestCertgate({ tls, routes });
  const chain = await startTestCertgate({ tls: { ...tls, crl: pki.crlPath, crl_mode: 'chain' }, routes });
  try {
    assert.equal((await mtlsRequest(leaf.url, as(pki.clients.direct))).status, 200, 'root-issued client, root has no CRL: passes');
    assert.equal((await mtlsRequest(leaf.url, as(pki.clients.good))).status, 200);
    await assertRefused(leaf, pki.clients.revoked, 'client_certificate_invalid', 'revoked');
    // chain mode: OpenSSL checks every CA of the chain (both CRLs present here), revocation still named.
    assert.equal((await mtlsRequest(chain.url, as(pki.clients.good))).status, 200);
    await assertRefused(chain, pki.clients.revoked, 'client_certificate_invalid', 'revoked');
  } finally {
    await Promise.all([leaf.close(), chain.close()]);
  }
});
