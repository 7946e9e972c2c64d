/**
 * The admin listener's Host rule over real sockets (issue 13 finding 10).
 *
 * Attack: DNS rebinding. The operator opens a page on evil.example; its DNS answer is then switched to
 * 127.0.0.1 (or the pod IP), and the page's same-origin requests reach the admin listener with
 * `Host: evil.example`, so the page reads /clients (who calls, from where) and /metrics. certgate answers
 * only an IP-literal Host (kubelet probes and Prometheus use the pod IP), `localhost` (and `*.localhost`),
 * and the names in `admin.allowed_hosts`; every other Host gets 421 misdirected_request, on every path,
 * before anything else is looked at. A request without Host (HTTP/1.0) is answered: browsers always
 * send one, HAProxy-style health checks do not.
 * Also: an admin listener beyond loopback without admin.token_file logs a warning at start-up.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { createTestPki, type TestPki } from '../helpers/pki.js';
import { startTestCertgate, startRecordingUpstream, type RunningCertgate, type RecordingUpstream } from '../helpers/certgate.js';
import { mtlsRequest } from '../helpers/client.js';

let pki: TestPki;
let upstream: RecordingUpstream;
let gate: RunningCertgate;
let adminPort: number;

before(async () => {
  pki = await createTestPki();
  upstream = await startRecordingUpstream();
  gate = await startTestCertgate({
    tls: { bundle: pki.serverBundle.pemPath, client_ca: pki.clientCa.path, watch: false },
    routes: [{ name: 'api', upstream: upstream.url }],
    // No token: exactly the set-up DNS rebinding reads from (loopback, "only the operator can reach it").
    admin: { listen: '127.0.0.1:0', allowed_hosts: ['certgate-admin.internal'] },
  });
  adminPort = Number(new URL(gate.adminUrl).port);
  // Something for /clients to show.
  assert.equal((await mtlsRequest(gate.url, { ca: pki.root.cert, cert: pki.clients.good.pem, key: pki.clients.good.key })).status, 200);
});
after(async () => {
  await Promise.all([gate?.close(), upstream?.close()]);
  pki?.cleanup();
});

interface Answer {
  readonly status: number;
  readonly type: string;
  readonly body: string;
}

/** One admin request with exactly this Host header (node:http, so the Host is ours, not the URL's). */
function adminRequest(path: string, host: string, method = 'GET'): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: adminPort, path, method, setHost: false, headers: { host }, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d)).on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type'] ?? ''), body }));
    });
    req.once('error', reject);
    req.end();
  });
}

/** An HTTP/1.0 request with no Host line at all (raw socket: node:http always adds one). */
function hostlessRequest(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(adminPort, '127.0.0.1', () => socket.write(`GET ${path} HTTP/1.0\r\n\r\n`));
    let raw = '';
    socket.setEncoding('utf8').on('data', (d: string) => (raw += d)).once('end', () => resolve(raw)).once('error', reject);
  });
}

test('DNS rebinding: Host evil.example gets 421 misdirected_request on /clients and /metrics (and every other path), no data', async () => {
  const rebinding = ['evil.example', `evil.example:${adminPort}`, 'EVIL.example', 'localhost.evil.example', 'certgate-admin.internal.evil.example', '127.0.0.1.nip.io'];
  for (const host of rebinding) {
    for (const path of ['/clients', '/metrics', '/', '/status.json', '/healthz', '/readyz', '/no-such-path']) {
      const r = await adminRequest(path, host);
      assert.equal(r.status, 421, `${host} ${path}: ${r.body}`);
      assert.match(r.type, /^application\/json/);
      const body = JSON.parse(r.body) as { error: string; reason: string; message: string };
      assert.equal(body.error, 'misdirected_request');
      assert.equal(body.reason, 'host_not_allowed');
      assert.match(body.message, /admin\.allowed_hosts/);
      assert.doesNotMatch(r.body, /svc-a|certgate_/, 'nothing from /clients or /metrics');
    }
  }
});

test('DNS rebinding: other methods from a rebinding Host are 421 too (before 405 or /enroll)', async () => {
  for (const path of ['/clients', '/enroll']) {
    const r = await adminRequest(path, 'evil.example', 'POST');
    assert.equal(r.status, 421, `${path}: ${r.body}`);
  }
});

test('an IP literal (the pod IP of kubelet probes and Prometheus), localhost, localhost:port and an allowed_hosts name are answered', async () => {
  const hosts = [
    `127.0.0.1:${adminPort}`, '127.0.0.1', '10.1.2.3:9090', `[::1]:${adminPort}`,
    'localhost', `localhost:${adminPort}`, `LocalHost:${adminPort}`, 'status.localhost',
    'certgate-admin.internal', `Certgate-Admin.Internal:${adminPort}`,
  ];
  for (const host of hosts) {
    const clients = await adminRequest('/clients', host);
    assert.equal(clients.status, 200, `${host}: ${clients.body}`);
    assert.match(clients.body, /CN=svc-a,OU=payments/, host);
    const metrics = await adminRequest('/metrics', host);
    assert.equal(metrics.status, 200, host);
    assert.match(metrics.body, /^certgate_http_requests_total\{/m, host);
    assert.equal((await adminRequest('/readyz', host)).status, 200, host);
  }
});

test('a request without Host (HTTP/1.0, as HAProxy-style checks send it) is answered', async () => {
  const raw = await hostlessRequest('/healthz');
  assert.match(raw, /^HTTP\/1\.1 200 /, raw);
  assert.match(raw, /"status":"ok"/);
});

test('start-up warns when the admin listener leaves loopback without admin.token_file, and not otherwise', async () => {
  const warnings = (g: RunningCertgate) => g.logs.lines.filter((l) => l.code === 'CG_ADMIN_EXPOSED');
  assert.deepEqual(warnings(gate), [], 'loopback: no warning');
  const exposed = await startTestCertgate({
    tls: { bundle: pki.serverBundle.pemPath, client_ca: pki.clientCa.path, watch: false },
    routes: [{ name: 'api', upstream: upstream.url }],
    admin: { listen: '0.0.0.0:0' },
  });
  try {
    const [w, ...more] = warnings(exposed);
    assert.ok(w !== undefined, 'a warning line');
    assert.deepEqual(more, [], 'logged once');
    assert.equal(w.level, 40, 'at warn level');
    assert.match(String(w.msg), /^admin\.listen 0\.0\.0\.0:0 is reachable beyond loopback and admin\.token_file is not set/);
    assert.match(String(w.hint), /admin\.token_file/);
  } finally {
    await exposed.close();
  }
});
