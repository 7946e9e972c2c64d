/**
 * admin.token_file over real sockets.
 *
 * Setup: one certgate with admin.token_file (token + trailing newline, as `openssl rand -hex 32 > f`
 * writes it), one without.
 * Must hold: /healthz, /readyz and /metrics answer without a token (Kubernetes probes, the Prometheus
 * scrape); every other admin path answers 401 with `WWW-Authenticate: Bearer` unless the request carries
 * `Authorization: Bearer <token>` — the status page's 401 is the page itself, which asks for the token;
 * wrong, partial or other-scheme credentials are refused; a token file that is missing or too short
 * refuses start-up with its code; the token never reaches the log.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { createTestPki, type TestPki } from '../helpers/pki.js';
import { startTestCertgate, startRecordingUpstream, type RunningCertgate, type RecordingUpstream } from '../helpers/certgate.js';
import { mtlsRequest } from '../helpers/client.js';

const TOKEN = 'c0ffee5e2b7d4a9f8e1d6c3b0a9f8e7d';

let pki: TestPki;
let upstream: RecordingUpstream;
let guarded: RunningCertgate;
let open: RunningCertgate;
let tokenFile: string;

before(async () => {
  pki = await createTestPki();
  upstream = await startRecordingUpstream();
  tokenFile = path.join(pki.dir, 'admin-token');
  writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
  const base = { tls: { bundle: pki.serverBundle.pemPath, client_ca: pki.clientCa.path, watch: false }, routes: [{ name: 'api', upstream: upstream.url }] };
  [guarded, open] = await Promise.all([
    startTestCertgate({ ...base, admin: { listen: '127.0.0.1:0', token_file: tokenFile } }),
    startTestCertgate(base),
  ]);
  // Something for /clients to show.
  assert.equal((await mtlsRequest(guarded.url, { ca: pki.root.cert, cert: pki.clients.good.pem, key: pki.clients.good.key })).status, 200);
});
after(async () => {
  await Promise.all([guarded?.close(), open?.close(), upstream?.close()]);
  pki?.cleanup();
});

const get = (g: RunningCertgate, p: string, authorization?: string) =>
  fetch(`${g.adminUrl}${p}`, { headers: authorization === undefined ? {} : { authorization } });

test('the probes and the scrape stay open with a token set', async () => {
  for (const p of ['/healthz', '/readyz', '/metrics']) {
    const res = await get(guarded, p);
    assert.equal(res.status, 200, p);
    await res.arrayBuffer();
  }
  assert.match(await (await get(guarded, '/metrics')).text(), /^certgate_http_requests_total\{route="api",method="GET",code="200",protocol="http\/1\.1"\} 1$/m);
});

test('everything else answers 401 with a Bearer challenge; the status page\'s 401 is the page asking for the token', async () => {
  for (const p of ['/', '/index.html', '/status.json', '/clients', '/clients?limit=1', '/no-such-path']) {
    const res = await get(guarded, p);
    assert.equal(res.status, 401, p);
    assert.equal(res.headers.get('www-authenticate'), 'Bearer realm="certgate admin"', p);
    const body = await res.text();
    if (p === '/') {
      assert.match(res.headers.get('content-type') ?? '', /^text\/html/);
      assert.match(body, /<form id="login-form">/);
      assert.doesNotMatch(body, /svc-a|CN=localhost/, 'the page carries no data');
    } else {
      assert.equal(JSON.parse(body).error, 'unauthorized', p);
      assert.doesNotMatch(body, /svc-a/);
    }
  }
});

test('wrong, partial or other-scheme credentials are refused', async () => {
  const basic = `Basic ${Buffer.from(`admin:${TOKEN}`).toString('base64')}`;
  for (const auth of [TOKEN, `Bearer ${TOKEN}x`, `Bearer ${TOKEN.slice(0, -1)}`, `Bearer ${TOKEN.toUpperCase()}`, basic, 'Bearer', `Token ${TOKEN}`]) {
    const res = await get(guarded, '/clients', auth);
    assert.equal(res.status, 401, auth);
    await res.arrayBuffer();
  }
});

test('with the token: the page, /status.json and /clients answer with real data', async () => {
  const auth = `Bearer ${TOKEN}`;
  const page = await get(guarded, '/', auth);
  assert.equal(page.status, 200);
  assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'none'/);
  await page.text();
  const status = await (await get(guarded, '/status.json', auth)).json() as { ready: boolean; admin: { auth: boolean }; certificates: { kind: string; subject: string }[] };
  assert.equal(status.ready, true);
  assert.equal(status.admin.auth, true);
  assert.equal(status.certificates.find((c) => c.kind === 'server')?.subject, 'CN=localhost');
  const clients = await get(guarded, '/clients', `bearer ${TOKEN}`);
  assert.equal(clients.status, 200, 'the scheme is case-insensitive');
  const body = await clients.json() as { clients: { subject: string; requests: number }[] };
  assert.deepEqual(body.clients.map((c) => [c.subject, c.requests]), [['CN=svc-a,OU=payments', 1]]);
});

test('without admin.token_file the admin endpoints need no token (the listener is on loopback by default)', async () => {
  for (const p of ['/', '/status.json', '/clients']) {
    const res = await get(open, p);
    assert.equal(res.status, 200, p);
    await res.arrayBuffer();
  }
});

test('methods other than GET/HEAD are refused before anything is served', async () => {
  const res = await fetch(`${guarded.adminUrl}/clients`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } });
  assert.equal(res.status, 405);
  await res.arrayBuffer();
});

test('a missing or too-short token file refuses start-up with its code', async () => {
  const base = { tls: { bundle: pki.serverBundle.pemPath, client_ca: pki.clientCa.path, watch: false }, routes: [{ name: 'api', upstream: upstream.url }] };
  const short = path.join(pki.dir, 'short-token');
  writeFileSync(short, 'secret\n');
  await assert.rejects(startTestCertgate({ ...base, admin: { listen: '127.0.0.1:0', token_file: short } }),
    (e: { code?: string; message?: string }) => e.code === 'CG_ADMIN_TOKEN' && e.message!.includes(short));
  await assert.rejects(startTestCertgate({ ...base, admin: { listen: '127.0.0.1:0', token_file: path.join(pki.dir, 'absent') } }),
    (e: { code?: string }) => e.code === 'CG_FILE_READ');
});

test('the token never reaches the log', () => {
  for (const line of guarded.logs.lines) assert.ok(!JSON.stringify(line).includes(TOKEN), JSON.stringify(line).slice(0, 200));
});
