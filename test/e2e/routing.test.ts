/**
 * Routes, policy and certgate's own answers over real TLS: first match wins; the allow list is decided
 * before the upstream is contacted (403 names the route and the client, not the rule); no encoding
 * trick reaches a route its allow list would refuse; unreachable and slow upstreams give 502/504 JSON;
 * every request is counted and logged once.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { createTestPki, type TestPki, type TestCert } from '../helpers/pki.js';
import { startTestCertgate, startRecordingUpstream, metricValue, type RunningCertgate, type RecordingUpstream } from '../helpers/certgate.js';
import { mtlsRequest, rawTlsExchange } from '../helpers/client.js';
import { waitFor } from '../helpers/wait.js';

let pki: TestPki;
let api: RecordingUpstream;
let admin: RecordingUpstream;
let fallback: RecordingUpstream;
let silent: RecordingUpstream;
let gate: RunningCertgate;
let deadPort: number;

before(async () => {
  pki = await createTestPki();
  [api, admin, fallback] = await Promise.all([startRecordingUpstream(), startRecordingUpstream(), startRecordingUpstream()]);
  silent = await startRecordingUpstream(() => true); // records, never answers
  deadPort = await closedPort();
  gate = await startTestCertgate({
    tls: { bundle: pki.serverBundle.pemPath, client_ca: pki.clientCa.path },
    routes: [
      { name: 'admin', path_prefix: '/admin', upstream: admin.url, allow: { subject_cn: ['svc-admin'], san_uri: ['spiffe://example.org/ns/*/sa/admin'] } },
      { name: 'svc-a-only', path_prefix: '/payments', upstream: `${api.url}/v1`, allow: { san_uri: ['spiffe://example.org/ns/*/sa/**'], subject_ou: ['payments'] } },
      { name: 'by-fingerprint', path_prefix: '/fp', upstream: api.url, allow: { fingerprint_sha256: ['0'.repeat(64)] } },
      { name: 'vhost', host: 'api.example.com', path_prefix: '/', upstream: api.url },
      { name: 'dead', path_prefix: '/dead', upstream: `http://127.0.0.1:${deadPort}` },
      { name: 'slow', path_prefix: '/slow', upstream: silent.url, timeout_ms: 300 },
      { name: 'public', path_prefix: '/public', upstream: fallback.url },
    ],
  });
});
after(async () => {
  await gate?.close();
  await Promise.all([api?.close(), admin?.close(), fallback?.close(), silent?.close()]);
  pki?.cleanup();
});

const as = (c: TestCert) => ({ ca: pki.root.cert, cert: c.pem, key: c.key });

async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as net.AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

test('allowed by SAN URI glob and OU: forwarded with the upstream URL path prepended, path unchanged', async () => {
  const before = api.requests.length;
  const r = await mtlsRequest(gate.url, as(pki.clients.good), { path: '/payments/x?y=1' });
  assert.equal(r.status, 200, r.body);
  assert.equal(api.requests.length, before + 1);
  assert.equal(api.requests.at(-1)!.url, '/v1/payments/x?y=1');
});

test('403 when the allow list refuses: names route and subject, not the rule; upstream never contacted', async () => {
  const before = admin.requests.length;
  const denied = metricValue(await gate.metricsText(), 'certgate_authz_denied_total', { route: 'admin' }) ?? 0;
  const r = await mtlsRequest(gate.url, as(pki.clients.good), { path: '/admin/users' });
  assert.equal(r.status, 403);
  const body = r.json();
  assert.equal(body.error, 'forbidden');
  assert.equal(body.route, 'admin');
  assert.match(String(body.message), /CN=svc-a,OU=payments/);
  assert.equal(body.rule, undefined, 'rule kinds only with errors.verbose');
  assert.doesNotMatch(r.body, /svc-admin|spiffe/, 'the allow list itself is not disclosed');
  assert.equal(admin.requests.length, before);
  assert.equal(metricValue(await gate.metricsText(), 'certgate_authz_denied_total', { route: 'admin' }), denied + 1);
});

test('segment-aware prefixes: /adminx is not /admin, /Admin is (case-insensitive, as Express routes)', async () => {
  const r1 = await mtlsRequest(gate.url, as(pki.clients.good), { path: '/adminx' });
  assert.equal(r1.status, 404);
  assert.equal(r1.json().error, 'no_route');
  const r2 = await mtlsRequest(gate.url, as(pki.clients.good), { path: '/ADMIN/users' });
  assert.equal(r2.status, 403, 'a case variant must not slip past the admin policy');
});

for (const [path, reason] of [
  ['/public/%2e%2e/admin/users', 'dot segments are resolved before matching'],
  ['/public/../admin/users', 'raw dot segments too'],
  ['/public//..//admin', 'slash runs with dot segments'],
] as const) {
  test(`no encoding trick reaches the admin route from a public prefix: ${path} (${reason})`, async () => {
    const before = { admin: admin.requests.length, fallback: fallback.requests.length };
    const raw = await rawTlsExchange('127.0.0.1', gate.port, as(pki.clients.good), `GET ${path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`);
    assert.match(raw, /^HTTP\/1\.1 (400|403) /, raw);
    assert.equal(admin.requests.length, before.admin);
    assert.equal(fallback.requests.length, before.fallback);
  });
}

for (const [path, reason] of [
  ['/public%2Fsecret', 'encoded_slash'],
  ['/public%5Csecret', 'backslash'],
  ['/public/%00', 'nul'],
  ['/../etc/passwd', 'dot_segment_escape'],
  ['http://evil.example/public', 'not_origin_form'],
] as const) {
  test(`400 bad_request (${reason}) for ${path}`, async () => {
    const before = fallback.requests.length;
    const raw = await rawTlsExchange('127.0.0.1', gate.port, as(pki.clients.good), `GET ${path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`);
    assert.match(raw, /^HTTP\/1\.1 400 /, raw);
    const body = JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4)) as Record<string, string>;
    assert.equal(body.error, 'bad_request');
    assert.equal(body.reason, reason);
    assert.equal(fallback.requests.length, before);
  });
}

test('host routes: case-insensitive, port ignored; other hosts fall through', async () => {
  const before = api.requests.length;
  const r = await mtlsRequest(gate.url, as(pki.clients.good), { path: '/anything', headers: { host: 'API.Example.com:8443' } });
  assert.equal(r.status, 200);
  assert.equal(api.requests.length, before + 1);
  assert.equal(api.requests.at(-1)!.headers.host, 'API.Example.com:8443', 'Host is forwarded unchanged');
  const miss = await mtlsRequest(gate.url, as(pki.clients.good), { path: '/anything', headers: { host: 'other.example.com' } });
  assert.equal(miss.status, 404);
});

test('two Host lines (any case) → 400 duplicate_host, closed; no upstream sees it (RFC 9112 §3.2)', async () => {
  const before = api.requests.length + fallback.requests.length;
  for (const second of ['Host: api.example.com', 'hOsT: localhost']) {
    const raw = await rawTlsExchange('127.0.0.1', gate.port, as(pki.clients.good), `GET /public/x HTTP/1.1\r\nHost: localhost\r\n${second}\r\n\r\n`);
    assert.match(raw, /^HTTP\/1\.1 400 /, raw);
    assert.match(raw, /"reason":"duplicate_host"/);
    assert.match(raw, /connection: close/i);
  }
  assert.equal(api.requests.length + fallback.requests.length, before);
  const one = await rawTlsExchange('127.0.0.1', gate.port, as(pki.clients.good), 'GET /public/x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
  assert.match(one, /^HTTP\/1\.1 200 /, 'one Host line is fine');
});

test('HTTP/1.1 without Host → 400 JSON missing_host; HTTP/1.0 without Host is served', async () => {
  const before = fallback.requests.length;
  const raw = await rawTlsExchange('127.0.0.1', gate.port, as(pki.clients.good), 'GET /public/x HTTP/1.1\r\n\r\n');
  assert.match(raw, /^HTTP\/1\.1 400 /, raw);
  assert.match(raw, /"reason":"missing_host"/);
  assert.equal(fallback.requests.length, before);
  const old = await rawTlsExchange('127.0.0.1', gate.port, as(pki.clients.good), 'GET /public/x HTTP/1.0\r\n\r\n');
  assert.match(old, /^HTTP\/1\.1 200 /, old);
  assert.equal(fallback.requests.length, before + 1);
});

test('fingerprint allow lists match only that certificate', async () => {
  const r = await mtlsRequest(gate.url, as(pki.clients.good), { path: '/fp' });
  assert.equal(r.status, 403);
});

test('502 JSON when the upstream refuses connections; counted with kind=refused', async () => {
  const r = await mtlsRequest(gate.url, as(pki.clients.good), { path: '/dead' });
  assert.equal(r.status, 502);
  assert.deepEqual({ error: r.json().error, kind: r.json().kind }, { error: 'upstream_unavailable', kind: 'refused' });
  assert.doesNotMatch(r.body, /at |ECONNREFUSED \d|node:/, 'no stack trace or internals');
  assert.equal(metricValue(await gate.metricsText(), 'certgate_upstream_errors_total', { route: 'dead', kind: 'refused' }), 1);
});

test('504 JSON past the route timeout; counted with kind=timeout', async () => {
  const r = await mtlsRequest(gate.url, as(pki.clients.good), { path: '/slow' });
  assert.equal(r.status, 504);
  assert.equal(r.json().error, 'upstream_timeout');
  assert.equal(metricValue(await gate.metricsText(), 'certgate_upstream_errors_total', { route: 'slow', kind: 'timeout' }), 1);
});

test('every request is counted and logged once with the access-log fields', async () => {
  const r = await mtlsRequest(gate.url, as(pki.clients.good), { path: '/public/log-me', method: 'POST', body: 'x'.repeat(100) });
  assert.equal(r.status, 200);
  const line = await waitFor(() => gate.logs.find('request').find((l) => l.path === '/public/log-me'), 'the access-log line');
  assert.equal(line.method, 'POST');
  assert.equal(line.status, 200);
  assert.equal(line.route, 'public');
  assert.equal(line.client_subject, 'CN=svc-a,OU=payments');
  assert.equal(line.client_fingerprint, pki.clients.good.x509.fingerprint256.replaceAll(':', '').toLowerCase());
  assert.equal(line.remote_address, '127.0.0.1');
  assert.equal(typeof line.duration_ms, 'number');
  assert.equal(line.bytes_in, 100, 'request body bytes');
  assert.ok(Number(line.bytes_out) > 0, JSON.stringify(line));
  assert.equal(gate.logs.find('request').filter((l) => l.path === '/public/log-me').length, 1);
  const text = await gate.metricsText();
  assert.ok((metricValue(text, 'certgate_http_requests_total', { route: 'public', method: 'POST', code: '200' }) ?? 0) >= 1);
  assert.ok((metricValue(text, 'certgate_http_request_duration_seconds_count', { route: 'public' }) ?? 0) >= 1);
  assert.equal(metricValue(text, 'certgate_http_requests_in_flight'), 0);
});

test('a client-chosen method is a bounded metric label', async () => {
  await mtlsRequest(gate.url, as(pki.clients.good), { path: '/public/m', method: 'PURGE' });
  const text = await gate.metricsText();
  assert.doesNotMatch(text, /method="PURGE"/);
  assert.ok((metricValue(text, 'certgate_http_requests_total', { route: 'public', method: 'OTHER', code: '200' }) ?? 0) >= 1);
});

test('admin: /healthz and /readyz answer 200, /metrics serves the contract names, unknown paths 404', async () => {
  assert.equal((await fetch(`${gate.adminUrl}/healthz`)).status, 200);
  const ready = await fetch(`${gate.adminUrl}/readyz`);
  assert.equal(ready.status, 200);
  assert.deepEqual(await ready.json(), { status: 'ready' });
  const text = await gate.metricsText();
  for (const name of ['certgate_http_requests_total', 'certgate_http_request_duration_seconds', 'certgate_tls_handshake_failures_total', 'process_cpu_seconds_total', 'nodejs_eventloop_lag_seconds']) {
    assert.match(text, new RegExp(`^# TYPE ${name} `, 'm'), name);
  }
  assert.equal((await fetch(`${gate.adminUrl}/nope`)).status, 404);
  assert.equal((await fetch(`${gate.adminUrl}/metrics`, { method: 'POST' })).status, 405);
});

test('TLS handshakes are counted by version', async () => {
  await mtlsRequest(gate.url, as(pki.clients.good), { path: '/public/v' });
  assert.ok((metricValue(await gate.metricsText(), 'certgate_tls_handshakes_total', { version: 'TLSv1.3', resumed: 'false' }) ?? 0) >= 1);
});

test('HTTP/1.0 keep-alive is honoured (ab speaks it), and HTTP/1.0 without it closes', async () => {
  const tls = await import('node:tls');
  const exchange = (head: string) => new Promise<{ text: string; closedByServer: boolean }>((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port: gate.port, servername: 'localhost', ca: pki.root.cert, cert: pki.clients.good.pem, key: pki.clients.good.key }, () => socket.write(head));
    let text = '';
    socket.on('data', (c: Buffer) => {
      text += c.toString('latin1');
      // A complete response with a body: for keep-alive the server must leave the socket open.
      if (/\r\n\r\n\{"ok":true[^}]*\}$/.test(text)) setImmediate(() => { const open = !socket.destroyed && socket.readable; socket.destroy(); resolve({ text, closedByServer: !open }); });
    });
    socket.on('end', () => resolve({ text, closedByServer: true }));
    socket.on('error', reject);
  });
  const kept = await exchange('GET /public/h10 HTTP/1.0\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n');
  assert.match(kept.text, /^HTTP\/1\.[01] 200 /, "Node answers with an HTTP/1.1 status line");
  assert.match(kept.text, /\r\nconnection: keep-alive\r\n/i, kept.text);
  const closed = await exchange('GET /public/h10 HTTP/1.0\r\nHost: localhost\r\n\r\n');
  assert.match(closed.text, /^HTTP\/1\.[01] 200 /);
  assert.match(closed.text, /\r\nconnection: close\r\n/i, closed.text);
  assert.equal(closed.closedByServer, true);
});
